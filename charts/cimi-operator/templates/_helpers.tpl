{{/* The release's base name, at most 63 characters. */}}
{{- define "cimi-operator.fullname" -}}
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

{{- define "cimi-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "cimi-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "cimi-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cimi-operator
{{- end -}}

{{/* Labels that select the operator's pods. */}}
{{- define "cimi-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cimi-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The name of a shard's Deployment (and PodDisruptionBudget): the release's full name, with "-shard-<index>" when
sharded. Takes a dict: root (the chart's context) and shard (the index). */}}
{{- define "cimi-operator.workloadName" -}}
{{- $base := include "cimi-operator.fullname" .root -}}
{{- if gt (int .root.Values.sharding.shards) 1 -}}
{{- printf "%s-shard-%d" ($base | trunc 55 | trimSuffix "-") (int .shard) -}}
{{- else -}}
{{- $base -}}
{{- end -}}
{{- end -}}

{{- define "cimi-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "cimi-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The provider's credentials Secret: the existing one, or the one the chart creates. */}}
{{- define "cimi-operator.providerSecret" -}}
{{- default (printf "%s-provider-%s" (include "cimi-operator.fullname" .) .Values.provider.name) .Values.provider.existingSecret -}}
{{- end -}}

{{/* Rules on the namespaced CIMI kinds: what the controllers read and write. */}}
{{- define "cimi-operator.namespacedRules" -}}
- apiGroups: [cimi.dev]
  resources: [cimimachines, cimivolumes, ciminetworks, cimisystems, cimimachineimages, cimivolumeimages]
  verbs: [list, watch, patch]
- apiGroups: [cimi.dev]
  resources: [cimimachines/status, cimivolumes/status, ciminetworks/status, cimisystems/status, cimimachineimages/status, cimivolumeimages/status]
  verbs: [patch]
# A team's own providers: read, watched, in-use finalizer and status.
- apiGroups: [cimi.dev]
  resources: [ciminamespacedproviders]
  verbs: [get, list, watch, patch]
- apiGroups: [cimi.dev]
  resources: [ciminamespacedproviders/status]
  verbs: [patch]
# A CimiSystem with exposeMembers creates (and, when it is turned off, deletes) read-only member objects.
- apiGroups: [cimi.dev]
  resources: [cimimachines, cimivolumes, ciminetworks]
  verbs: [create, delete]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch]
{{- end -}}

{{/* Rules on cluster-scoped objects: CimiProviders and the namespaces allowedNamespaces selects. */}}
{{- define "cimi-operator.clusterRules" -}}
- apiGroups: [cimi.dev]
  resources: [cimiproviders]
  verbs: [get, list, watch, patch]
- apiGroups: [cimi.dev]
  resources: [cimiproviders/status]
  verbs: [patch]
# The labels of a namespace, for a CimiProvider's allowedNamespaces (one GET, cached briefly).
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get]
{{- end -}}

{{- define "cimi-operator.checks" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) -}}
{{- fail "replicaCount > 1 requires leaderElection.enabled=true" -}}
{{- end -}}
{{- if and (eq .Values.rbac.mode "namespaced") (empty .Values.watch.namespaces) -}}
{{- fail "rbac.mode=namespaced requires watch.namespaces" -}}
{{- end -}}
{{- if and .Values.provider.create (empty .Values.provider.endpoint) -}}
{{- fail "provider.create requires provider.endpoint" -}}
{{- end -}}
{{- end -}}
