{{/*
The rules of each component's Roles (rbac.yaml): "kubelambda.rules.<component>.functions"
for function namespaces and "kubelambda.rules.<component>.platform" for the release
namespace.
*/}}

{{- define "kubelambda.rules.gateway.functions" -}}
# The Lambda management API writes the custom resources; DeleteFunction removes a
# function's versions and aliases with one collection delete.
- apiGroups: [kubelambda.io]
  resources: [functions, functionversions, aliases]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [kubelambda.io]
  resources: [functionversions, aliases]
  verbs: [deletecollection]
- apiGroups: [kubelambda.io]
  resources: [functions/status, functionversions/status, aliases/status]
  verbs: [get, update, patch]
# The invoke path routes to the pods it watches.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
{{- end -}}

{{- define "kubelambda.rules.gateway.platform" -}}
# Code packages are Secrets in the release namespace: uploads store them, pods fetch them
# through the gateway (a corrupt chunk is patched back to "writing", a stale one replaced).
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, create, patch, delete]
# Where the cluster has no DNS, the platform reads its own Services' ClusterIPs (the
# controller Service's address).
- apiGroups: [""]
  resources: [services]
  resourceNames: [{{ include "kubelambda.fullname" . }}-controller]
  verbs: [get]
{{- end -}}

{{- define "kubelambda.rules.controller.functions" -}}
- apiGroups: [kubelambda.io]
  resources: [functions, functionversions, aliases]
  verbs: [get, list, watch, update, patch]
- apiGroups: [kubelambda.io]
  resources: [functions/status, functionversions/status, aliases/status]
  verbs: [get, update, patch]
# Its objects' owner references block their owner's deletion, which clusters running the
# OwnerReferencesPermissionEnforcement admission plugin allow only with this.
- apiGroups: [kubelambda.io]
  resources: [functions/finalizers, functionversions/finalizers]
  verbs: [update]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
# What the controller makes for each function and version (all owned by their custom
# resource, so Kubernetes' garbage collector removes them with it).
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [""]
  resources: [services, serviceaccounts, secrets]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [get, list, watch, create, update, patch, delete]
{{- if .Values.controller.allowFunctionRoles }}
# controller.allowFunctionRoles: Roles with the rules a Function asks for, which the
# controller itself does not hold (see values.yaml for the risk).
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles]
  verbs: [escalate, bind]
{{- end }}
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end -}}

{{- define "kubelambda.rules.controller.platform" -}}
# Leader election on the release's own Lease (templates/lease.yaml), and no other.
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  resourceNames: [kubelambda-controller]
  verbs: [get, update]
# The code store: inline zips of hand-written Functions are stored, packages no version
# uses any more are collected.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, create, patch, delete]
# Where the cluster has no DNS, the platform reads its own Services' ClusterIPs (the
# gateway Service's address).
- apiGroups: [""]
  resources: [services]
  resourceNames: [{{ include "kubelambda.fullname" . }}-gateway]
  verbs: [get]
{{- end -}}

{{- define "kubelambda.rules.dispatcher.functions" -}}
# Event invocations run through the same invoke path: the catalog and the pods.
- apiGroups: [kubelambda.io]
  resources: [functions, functionversions, aliases]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
{{- end -}}

{{- define "kubelambda.rules.dispatcher.platform" -}}
# Where the cluster has no DNS, the platform reads its own Services' ClusterIPs (the
# controller Service's address).
- apiGroups: [""]
  resources: [services]
  resourceNames: [{{ include "kubelambda.fullname" . }}-controller]
  verbs: [get]
{{- end -}}
