{{/*
Names, labels and the few decisions more than one template needs (leader election, the PDB
apiVersion, the RBAC rule lists), so each is made in one place.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "gitsync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The object name prefix: fullnameOverride, or <release>-<name> (just <release> if it contains the name). */}}
{{- define "gitsync.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Cluster-scoped names carry the release namespace: two releases of the same name in different namespaces must not share a ClusterRole. */}}
{{- define "gitsync.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "gitsync.fullname" .) | trunc 253 | trimSuffix "-" }}
{{- end }}

{{- define "gitsync.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "gitsync.labels" -}}
helm.sh/chart: {{ include "gitsync.chart" . }}
{{ include "gitsync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: gitsync
{{- end }}

{{/* Labels that select the controller pods (immutable in a Deployment: keep them stable). */}}
{{- define "gitsync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gitsync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "gitsync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gitsync.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "gitsync.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* The projected-volume sources for the UI's credential files (empty when none is configured). */}}
{{- define "gitsync.uiSecrets" -}}
{{- $files := list (list .Values.ui.adminPassword "admin-password") (list .Values.ui.apiTokens "api-tokens") (list .Values.ui.readOnlyTokens "read-only-tokens") (list .Values.metrics.tokens "metrics-tokens") (list .Values.ui.sessionKey "session-key") (list .Values.ui.oidc.clientSecret "oidc-client-secret") }}
{{- range $files }}
{{- $ref := index . 0 }}
{{- if $ref.existingSecret }}
- secret:
    name: {{ $ref.existingSecret }}
    items:
      - key: {{ $ref.key }}
        path: {{ index . 1 }}
{{- end }}
{{- end }}
{{- end }}

{{/* "true" when the controller must elect a leader: several replicas (two writers would fight over the same objects), or asked for. */}}
{{- define "gitsync.leaderElect" -}}
{{- if or .Values.controller.leaderElect (gt (int .Values.replicas) 1) }}true{{ end }}
{{- end }}

{{/* The namespaces of namespaced mode, checked. */}}
{{- define "gitsync.watchedNamespaces" -}}
{{- if and .Values.rbac.namespaced (not .Values.rbac.namespaces) }}
{{- fail "rbac.namespaced is true: list the namespaces gitsync may manage in rbac.namespaces" }}
{{- end }}
{{- join "," (.Values.rbac.namespaces | uniq) }}
{{- end }}

{{/*
The PodDisruptionBudget apiVersion. A real install sees the cluster's API list (policy/v1 is
missing before Kubernetes 1.21). An offline render (helm template, GitOps tools) sees Helm's
built-in list, which has policy/v1 whatever the target, so the Kubernetes version decides there
(`--kube-version`); podDisruptionBudget.apiVersion overrides both.
*/}}
{{- define "gitsync.pdbApiVersion" -}}
{{- if .Values.podDisruptionBudget.apiVersion }}
{{- .Values.podDisruptionBudget.apiVersion }}
{{- else if and (.Capabilities.APIVersions.Has "policy/v1") (semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version) }}
{{- "policy/v1" }}
{{- else }}
{{- "policy/v1beta1" }}
{{- end }}
{{- end }}

{{/* The verbs gitsync needs on what it manages: read and watch (the live cache), server-side apply (patch; create/update for objects it creates), prune (delete). Never "*". With impersonation every apply, prune and rollout step is the Applications' ServiceAccounts' (the rollout executor's too), so gitsync itself only reads. Call with the root context. */}}
{{- define "gitsync.manageVerbs" -}}
{{- if .Values.impersonation.enabled -}}
["get", "list", "watch"]
{{- else -}}
["get", "list", "watch", "create", "update", "patch", "delete"]
{{- end -}}
{{- end }}

{{/* What gitsync writes as itself wherever it manages: with impersonation, only its own objects there - each Application's inventory ConfigMap, and a Rollout's status (in gitsync.manageRules). */}}
{{- define "gitsync.ownObjectRules" -}}
{{- if .Values.impersonation.enabled }}
# The inventories (ConfigMaps gitsync names and owns); tenant objects are written as the
# Applications' ServiceAccounts.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
{{- if .Values.rbac.manageAll }}
# A Rollout's status: the rollout executor's bookkeeping (the kinds mode lists it below).
- apiGroups: ["gitsync.dev"]
  resources: ["rollouts/status"]
  verbs: ["get", "patch"]
{{- end }}
{{- end }}
{{- end }}

{{/*
What gitsync may manage. manageAll: everything, with explicit verbs. Otherwise the common kinds;
cluster-scoped ones (namespaces, CRDs) only in a ClusterRole (`cluster` true). In a Role, `get` on
namespaces lets gitsync read its own Namespace object (the inventory checks it exists); the API
server authorizes GET /api/v1/namespaces/<ns> against Roles in <ns>.
Call with (dict "root" $ "cluster" true|false).
*/}}
{{- define "gitsync.manageRules" -}}
{{- $root := .root }}
{{- with include "gitsync.ownObjectRules" $root }}
{{- . }}
{{- end }}
{{- if $root.Values.rbac.manageAll }}
- apiGroups: ["*"]
  resources: ["*"]
  verbs: {{ include "gitsync.manageVerbs" $root }}
{{- else }}
- apiGroups: [""]
  resources: ["configmaps", "secrets", "services", "serviceaccounts", "persistentvolumeclaims"]
  verbs: {{ include "gitsync.manageVerbs" $root }}
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
# read only, for the live resource tree (gitsync.controller.live_tree): a Service's endpoints
- apiGroups: [""]
  resources: ["endpoints"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["get", "list", "watch"]
{{- if ne $root.Values.ui.logs.role "none" }}
# Container logs for the UI, the API and `gitsync app logs` (`--logs-role`).
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
{{- end }}
{{- if .cluster }}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: {{ include "gitsync.manageVerbs" $root }}
{{- else }}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get"]
{{- end }}
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets", "daemonsets", "replicasets"]
  verbs: {{ include "gitsync.manageVerbs" $root }}
- apiGroups: ["batch"]
  resources: ["jobs", "cronjobs"]
  verbs: {{ include "gitsync.manageVerbs" $root }}
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses", "networkpolicies"]
  verbs: {{ include "gitsync.manageVerbs" $root }}
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: {{ include "gitsync.manageVerbs" $root }}
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: {{ include "gitsync.manageVerbs" $root }}
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: {{ include "gitsync.manageVerbs" $root }}
# gitsync's own progressive-delivery kind (charts/gitsync/crds): applied from Git, status
# written by the rollout executor (as gitsync, for a Rollout the app's ServiceAccount may patch).
- apiGroups: ["gitsync.dev"]
  resources: ["rollouts"]
  verbs: {{ include "gitsync.manageVerbs" $root }}
- apiGroups: ["gitsync.dev"]
  resources: ["rollouts/status"]
  verbs: ["get", "patch"]
{{- if .cluster }}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
{{- end }}
{{- end }}
{{- range $root.Values.rbac.extraRules }}
{{- if has "*" (.verbs | default list) }}
{{- fail "rbac.extraRules: the \"*\" verb is not allowed; list the verbs gitsync needs" }}
{{- end }}
{{- end }}
{{- with $root.Values.rbac.extraRules }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
What the controller itself needs wherever Applications live: read and watch Applications, patch
them (request annotations) and their status subresource, record Events about them, and (with
impersonation) act as the ServiceAccounts there. (The
Secrets their spec.source.secretRef names and their inventory ConfigMaps are covered by
gitsync.manageRules, which every mode grants in the same place.)
*/}}
{{- define "gitsync.applicationRules" -}}
{{- if .Values.impersonation.enabled }}
# Impersonation (--impersonate): each Application's reads and writes run as a ServiceAccount in
# its own namespace. Only ServiceAccounts: never users or groups (the API server adds a
# ServiceAccount's own groups itself).
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["impersonate"]
{{- end }}
- apiGroups: ["gitsync.dev"]
  resources: ["applications"]
  verbs: ["get", "list", "watch", "patch"]
# Events of the namespaces an Application may use, for its Events on the page and API (read only;
# kept per app, bounded by --events-per-app).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["gitsync.dev"]
  resources: ["applications/status"]
  verbs: ["get", "patch"]
# ApplicationSets: the controller creates, updates and deletes the Applications a set generates,
# in the set's own namespace (the owner reference blocks the set's deletion until they are gone,
# which needs update on applicationsets/finalizers where OwnerReferencesPermissionEnforcement is on).
- apiGroups: ["gitsync.dev"]
  resources: ["applications"]
  verbs: ["create", "delete"]
- apiGroups: ["gitsync.dev"]
  resources: ["applicationsets"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["gitsync.dev"]
  resources: ["applicationsets/status"]
  verbs: ["get", "patch"]
- apiGroups: ["gitsync.dev"]
  resources: ["applicationsets/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
# Notifications: rules and providers are watched; a provider's Secret is read by name from the
# provider's own namespace (and used only when labelled gitsync.dev/secret-type: notification)
# with the read on secrets the manage rules already grant.
- apiGroups: ["gitsync.dev"]
  resources: ["notificationproviders", "notificationrules"]
  verbs: ["get", "list", "watch"]
{{- end }}

{{/*
The destination policy file rendered from `policy.defaults` and `policy.projects`.
*/}}
{{- define "gitsync.policyFile" -}}
apiVersion: gitsync.dev/v1alpha1
kind: DestinationPolicy
defaults:
  {{- toYaml (.Values.policy.defaults | default dict) | nindent 2 }}
projects:
  {{- toYaml (.Values.policy.projects | default dict) | nindent 2 }}
{{- end }}
