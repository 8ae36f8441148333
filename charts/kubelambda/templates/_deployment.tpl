{{/*
One platform Deployment: the image's `kubelambda <component>` entry point under the
"restricted" pod security standard, with the credentials Secret, a writable home and /tmp
(the root filesystem is read-only). Called by gateway.yaml, controller.yaml and dispatcher.yaml with
(dict "root" $ "component" "gateway" "port" 8080 "values" .Values.gateway
      "readinessPath" "/healthz" "strategy" (dict ...) "invoker" true "kafka" true
      "env" (include "..." $) "preStop" "5" "grace" 60).
*/}}
{{- define "kubelambda.deployment" -}}
{{- $root := .root -}}
{{- $values := .values -}}
{{- $kafka := $root.Values.kafka -}}
{{- $annotations := merge (deepCopy ($values.podAnnotations | default dict)) ($root.Values.podAnnotations | default dict) -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "kubelambda.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "kubelambda.labels" . | nindent 4 }}
spec:
  replicas: {{ $values.replicas }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "kubelambda.selectorLabels" . | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      {{- toYaml .strategy | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "kubelambda.selectorLabels" . | nindent 8 }}
        {{- if .invoker }}
        # Function pods' NetworkPolicies admit only pods with this label in the platform namespace.
        kubelambda.io/invoker: "true"
        {{- end }}
      {{- with $annotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      serviceAccountName: {{ include "kubelambda.componentName" . }}
      # The platform talks to the apiserver from inside the cluster.
      automountServiceAccountToken: true
      enableServiceLinks: false
      {{- with ($values.priorityClassName | default $root.Values.priorityClassName) }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- with ($values.imagePullSecrets | default $root.Values.imagePullSecrets) }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with ($values.nodeSelector | default $root.Values.nodeSelector) }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with ($values.tolerations | default $root.Values.tolerations) }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with ($values.affinity | default $root.Values.affinity) }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .grace }}
      terminationGracePeriodSeconds: {{ . }}
      {{- end }}
      securityContext:
        runAsNonRoot: true
        runAsUser: 10002
        runAsGroup: 10002
        # The credentials Secret is mounted 0440: readable through this group.
        fsGroup: 10002
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: {{ .component }}
          image: "{{ $root.Values.image.repository }}:{{ $root.Values.image.tag }}"
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args: [{{ .component | quote }}]
          ports:
            - name: http
              containerPort: {{ .port }}
              protocol: TCP
          env:
            - name: KUBELAMBDA_HOME
              value: /var/lib/kubelambda
            - name: KUBELAMBDA_SECRETS_DIR
              value: /etc/kubelambda/secrets
            - name: KUBELAMBDA_HOST
              value: 0.0.0.0
            - name: KUBELAMBDA_PORT
              value: {{ .port | quote }}
            - name: KUBELAMBDA_PLATFORM_NAMESPACE
              valueFrom:
                fieldRef:
                  fieldPath: metadata.namespace
            - name: KUBELAMBDA_NAMESPACES
              value: {{ join "," $root.Values.functionNamespaces | quote }}
            - name: KUBELAMBDA_REGION
              value: {{ $root.Values.region | quote }}
            - name: KUBELAMBDA_LOG_LEVEL
              value: {{ $root.Values.logLevel | quote }}
            {{- if .kafka }}
            - name: KUBELAMBDA_CONTROLLER_URL
              value: {{ include "kubelambda.controllerURL" $root | quote }}
            {{- include "kubelambda.kafkaEnv" $root | nindent 12 }}
            {{- end }}
            {{- with .env }}
            {{- . | nindent 12 }}
            {{- end }}
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: 10
            timeoutSeconds: 5
            failureThreshold: 3
          readinessProbe:
            httpGet:
              path: {{ .readinessPath }}
              port: http
            periodSeconds: 2
            timeoutSeconds: 2
            failureThreshold: 2
          startupProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: 1
            failureThreshold: 120
          {{- with .preStop }}
          lifecycle:
            preStop:
              sleep:
                seconds: {{ . }}
          {{- end }}
          resources:
            {{- toYaml $values.resources | nindent 12 }}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            runAsNonRoot: true
            runAsUser: 10002
            runAsGroup: 10002
            capabilities:
              drop: [ALL]
            seccompProfile:
              type: RuntimeDefault
          volumeMounts:
            - name: home
              mountPath: /var/lib/kubelambda
            - name: tmp
              mountPath: /tmp
            - name: credentials
              mountPath: /etc/kubelambda/secrets
              readOnly: true
            {{- if and .kafka $kafka.tls.caSecret }}
            - name: kafka-ca
              mountPath: /etc/kubelambda/kafka-ca
              readOnly: true
            {{- end }}
      volumes:
        - name: home
          emptyDir: {}
        - name: tmp
          emptyDir: {}
        - name: credentials
          secret:
            secretName: {{ include "kubelambda.credentialsSecret" $root }}
            defaultMode: 288  # 0440: owner and group (fsGroup) read
        {{- if and .kafka $kafka.tls.caSecret }}
        - name: kafka-ca
          secret:
            secretName: {{ $kafka.tls.caSecret }}
            items:
              - key: {{ $kafka.tls.caKey }}
                path: ca.crt
        {{- end }}
{{- end -}}

{{/* The Kafka client settings of the gateway and the dispatcher. */}}
{{- define "kubelambda.kafkaEnv" -}}
{{- $kafka := .Values.kafka -}}
- name: KUBELAMBDA_KAFKA_BOOTSTRAP
  value: {{ required "kafka.bootstrapServers is required: the host:port list of an existing Kafka cluster that pods reach (--set kafka.bootstrapServers=kafka.example:9092)" $kafka.bootstrapServers | quote }}
- name: KUBELAMBDA_KAFKA_TOPIC_PREFIX
  value: {{ $kafka.topicPrefix | default .Release.Name | quote }}
- name: KUBELAMBDA_KAFKA_PARTITIONS
  value: {{ $kafka.partitions | quote }}
- name: KUBELAMBDA_KAFKA_REPLICATION_FACTOR
  value: {{ $kafka.replicationFactor | quote }}
- name: KUBELAMBDA_KAFKA_SECURITY_PROTOCOL
  value: {{ $kafka.securityProtocol | quote }}
{{- if hasPrefix "SASL_" $kafka.securityProtocol }}
- name: KUBELAMBDA_KAFKA_SASL_MECHANISM
  value: {{ required "kafka.sasl.mechanism is required with a SASL_* kafka.securityProtocol" $kafka.sasl.mechanism | quote }}
- name: KUBELAMBDA_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ required "kafka.sasl.existingSecret is required with a SASL_* kafka.securityProtocol" $kafka.sasl.existingSecret }}
      key: username
- name: KUBELAMBDA_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $kafka.sasl.existingSecret }}
      key: password
{{- end }}
{{- if $kafka.tls.caSecret }}
- name: KUBELAMBDA_KAFKA_SSL_CAFILE
  value: /etc/kubelambda/kafka-ca/ca.crt
{{- end }}
{{- end -}}

{{/* An optional variable: rendered only when the value is set (not null). */}}
{{- define "kubelambda.optionalEnv" -}}
{{- if not (kindIs "invalid" .value) }}
- name: {{ .name }}
  value: {{ include "kubelambda.number" .value | quote }}
{{- end }}
{{- end -}}

{{/*
A number as the platform parses it. Values arrive as float64, which prints large whole
numbers in exponent form (268435456 as 2.68435456e+08): whole numbers print as integers.
*/}}
{{- define "kubelambda.number" -}}
{{- if eq (float64 .) (float64 (int64 .)) -}}
{{- int64 . -}}
{{- else -}}
{{- . -}}
{{- end -}}
{{- end -}}
