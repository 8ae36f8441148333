{{/*
Names, labels and the parts every platform pod shares. The Deployments are rendered by
"kubelambda.deployment" (templates/_deployment.tpl) from a component's name, port and extra
environment, so the three pods cannot drift apart in their security settings.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "kubelambda.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 42 | trimSuffix "-" -}}
{{- end -}}

{{/*
<release>-<chart> (just <release> when it contains the chart name), or fullnameOverride.
Cut to 42 characters, so "<fullname>-credentials" and the other suffixed names stay within
the 63 characters of a Service name.
*/}}
{{- define "kubelambda.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 42 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 42 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 42 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the release's pods; with a component, that component's. */}}
{{- define "kubelambda.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubelambda.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end -}}

{{/* Labels of every object the chart makes: call with (dict "root" $ "component" "gateway"). */}}
{{- define "kubelambda.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "kubelambda.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: kubelambda
{{- end -}}

{{/* Name of a component's ServiceAccount, Service and Deployment. */}}
{{- define "kubelambda.componentName" -}}
{{- printf "%s-%s" (include "kubelambda.fullname" .root) .component -}}
{{- end -}}

{{/* The Secret with the platform's credentials and instance key. */}}
{{- define "kubelambda.credentialsSecret" -}}
{{- printf "%s-credentials" (include "kubelambda.fullname" .) -}}
{{- end -}}

{{/* Where gateways and dispatchers post scale signals: the controller Service. */}}
{{- define "kubelambda.controllerURL" -}}
{{- if .Values.controller.url -}}
{{- .Values.controller.url -}}
{{- else -}}
{{- printf "http://%s-controller.%s.svc:8081" (include "kubelambda.fullname" .) .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/* Where function pods fetch code and announce themselves: the gateway Service. */}}
{{- define "kubelambda.codeURL" -}}
{{- if .Values.gateway.urlForFunctions -}}
{{- .Values.gateway.urlForFunctions -}}
{{- else -}}
{{- printf "http://%s-gateway.%s.svc:8080" (include "kubelambda.fullname" .) .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/*
Cluster-scoped names carry the namespace too: two releases of the same name in two
namespaces must not share a ClusterRole.
*/}}
{{- define "kubelambda.clusterName" -}}
{{- printf "%s-%s-%s" .root.Release.Namespace (include "kubelambda.fullname" .root) .component -}}
{{- end -}}
