{{/* Name of the chart, overridable. */}}
{{- define "qwen-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: release-name + chart name, unless the release name already contains it. */}}
{{- define "qwen-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Cluster-scoped objects are shared by all releases: their names carry the release namespace too (the RBAC objects
in watched namespaces use the same name). Too long a name is cut and made unique again with a hash.
*/}}
{{- define "qwen-operator.clusterName" -}}
{{- $name := printf "%s-%s" (include "qwen-operator.fullname" .) .Release.Namespace -}}
{{- if gt (len $name) 63 -}}
{{- printf "%s-%s" ($name | trunc 54 | trimSuffix "-") ($name | sha256sum | trunc 8) -}}
{{- else -}}
{{- $name -}}
{{- end -}}
{{- end -}}

{{- define "qwen-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "qwen-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "qwen-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "qwen-operator.labels" -}}
helm.sh/chart: {{ include "qwen-operator.chart" . }}
{{ include "qwen-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: qwen-operator
{{- end -}}

{{- define "qwen-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "qwen-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "qwen-operator.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/*
RBAC rules on the namespaced objects the operator reads and writes (operator/qwen_operator/adapters/kube.py and
handlers/controller.py). Server-side apply is a PATCH; shared compile-cache objects are GET, then POST (create)
or a JSON PATCH adding an owner reference; status is a merge PATCH on the status subresource. A QwenDeployment
itself is only read: the operator has no per-object Kopf timer, so Kopf puts no finalizer on it.
The router's objects (spec.routing: operator/qwen_operator/manifests/router.py) are the only ones the operator
deletes, when routing is turned off; otherwise ownerReferences garbage-collect what it made. The router's Role
grants list and watch on pods; RBAC lets the operator create that Role and bind it only because it holds those
verbs on pods itself (the escalation rule: no `escalate` or `bind` is granted here, so it cannot give more).
*/}}
{{- define "qwen-operator.namespacedRules" -}}
- apiGroups: ["qwenops.dev"]
  resources: ["qwendeployments"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["qwenops.dev"]
  resources: ["qwendeployments/status"]
  verbs: ["patch"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["services", "persistentvolumeclaims"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "list"]
{{- end -}}

{{/* Cluster-scoped reads: GPU nodes (capacity per product). Kopf's cluster scanning (CRDs, namespaces) is off. */}}
{{- define "qwen-operator.clusterRules" -}}
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["get", "list", "watch"]
{{- end -}}
