{{/* Names, labels and the checks values.schema.json cannot express. */}}

{{- define "hg.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "hg.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: gateway, redis or chroma. */}}
{{- define "hg.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "hg.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* The pod-level security context every pod of the release runs with. */}}
{{- define "hg.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "hg.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
{{- end -}}

{{- define "hg.redisName" -}}{{ include "hg.fullname" . }}-redis{{- end -}}
{{- define "hg.chromaName" -}}{{ include "hg.fullname" . }}-chroma{{- end -}}

{{/* Gateway pod annotations; the policies checksum makes `helm upgrade` roll the pods when they change. */}}
{{- define "hg.podAnnotations" -}}
{{- $annotations := deepCopy .Values.podAnnotations -}}
{{- if .Values.policies.rollOnChange -}}
{{- $_ := set $annotations "checksum/policies" (toJson .Values.policies.files | sha256sum) -}}
{{- end -}}
{{- with $annotations }}{{ toYaml . }}{{ end -}}
{{- end -}}

{{/* The ConfigMap holding the policy directory; empty: the image's shipped policies. */}}
{{- define "hg.policiesConfigMap" -}}
{{- if .Values.policies.existingConfigMap -}}{{ .Values.policies.existingConfigMap }}
{{- else if .Values.policies.files -}}{{ include "hg.fullname" . }}-policies
{{- end -}}
{{- end -}}

{{/* True (non-empty) when the gateway pods share state through Redis. */}}
{{- define "hg.redisConfigured" -}}
{{- if or .Values.redis.url .Values.redis.existingSecret .Values.redis.bundled.enabled -}}true{{- end -}}
{{- end -}}

{{/* True (non-empty) when /metrics needs a client key: keys configured and monitoring.requireKey. */}}
{{- define "hg.metricsNeedKey" -}}
{{- if and .Values.apiKeys.existingSecret .Values.monitoring.requireKey -}}true{{- end -}}
{{- end -}}

{{/* The most gateway pods the release can run: replicaCount, or the autoscaler's maximum. */}}
{{- define "hg.maxReplicas" -}}
{{- if .Values.autoscaling.enabled -}}{{ .Values.autoscaling.maxReplicas }}{{- else -}}{{ .Values.replicaCount }}{{- end -}}
{{- end -}}

{{/* The fewest gateway pods the release can run: replicaCount, or the autoscaler's minimum. */}}
{{- define "hg.minReplicas" -}}
{{- if .Values.autoscaling.enabled -}}{{ .Values.autoscaling.minReplicas }}{{- else -}}{{ .Values.replicaCount }}{{- end -}}
{{- end -}}

{{/*
Refuse value combinations that would deploy a cluster that silently misbehaves.
Included by the gateway Deployment, so every render runs it.
*/}}
{{- define "hg.validate" -}}
{{- $max := include "hg.maxReplicas" . | int -}}
{{- if and (eq .Values.chroma.mode "embedded") (gt $max 1) -}}
{{- fail (printf "chroma.mode=embedded keeps a separate knowledge base in each pod and supports a single replica, but up to %d gateway pods were requested (replicaCount/autoscaling): set chroma.mode=server (bundled Chroma) or chroma.mode=external with chroma.url" $max) -}}
{{- end -}}
{{- if and (gt $max 1) (not (include "hg.redisConfigured" .)) -}}
{{- fail (printf "%d gateway pods need shared state (A/B assignments, circuit breakers, the cluster ledger): set redis.url, redis.existingSecret or redis.bundled.enabled=true" $max) -}}
{{- end -}}
{{- if and .Values.redis.bundled.enabled (or .Values.redis.url .Values.redis.existingSecret) -}}
{{- fail "redis.bundled.enabled=true conflicts with redis.url/redis.existingSecret: choose the bundled Redis or an external one" -}}
{{- end -}}
{{- if and .Values.redis.url .Values.redis.existingSecret -}}
{{- fail "set either redis.url or redis.existingSecret, not both" -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (lt (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) -}}
{{- fail "autoscaling.maxReplicas must be at least autoscaling.minReplicas" -}}
{{- end -}}
{{- $min := include "hg.minReplicas" . | int -}}
{{- if and .Values.podDisruptionBudget.enabled (ge (int .Values.podDisruptionBudget.minAvailable) $min) -}}
{{- fail (printf "podDisruptionBudget.minAvailable=%d with as few as %d gateway pods would block every node drain: raise replicaCount (or autoscaling.minReplicas) or lower minAvailable" (int .Values.podDisruptionBudget.minAvailable) $min) -}}
{{- end -}}
{{- if or (hasKey (.Values.resources.requests | default dict) "memory") (hasKey (.Values.resources.limits | default dict) "memory") -}}
{{- fail "gateway memory follows workers: set memory.perWorkerMi/baseMi/limitPercent (or memory.limitMi), not resources.*.memory" -}}
{{- end -}}
{{- $needed := include "hg.memoryRequestMi" . | int -}}
{{- if and .Values.memory.limitMi (lt (int .Values.memory.limitMi) $needed) -}}
{{- fail (printf "memory.limitMi=%d cannot hold %d workers: they need %d MiB (memory.baseMi + workers x memory.perWorkerMi); lower workers or raise the limit (docs/deploy.md, Memory)" (int .Values.memory.limitMi) (int .Values.workers) $needed) -}}
{{- end -}}
{{- if and .Values.policies.files .Values.policies.existingConfigMap -}}
{{- fail "set either policies.files or policies.existingConfigMap, not both" -}}
{{- end -}}
{{- if and .Values.policies.rollOnChange .Values.policies.existingConfigMap -}}
{{- fail "policies.rollOnChange needs policies.files: the chart cannot checksum a ConfigMap it does not render" -}}
{{- end -}}
{{- if not (or .Values.apiKeys.existingSecret .Values.allowUnauthenticated) -}}
{{- fail "the gateway listens on the pod network and refuses to do so without client keys: set apiKeys.existingSecret (a Secret of client keys), or allowUnauthenticated=true if something in front of it authenticates clients" -}}
{{- end -}}
{{- if and .Values.monitoring.serviceMonitor.enabled (include "hg.metricsNeedKey" .) (not .Values.monitoring.serviceMonitor.bearerTokenSecret.name) -}}
{{- fail "with client keys, /metrics needs one: set monitoring.serviceMonitor.bearerTokenSecret.name to a Secret holding a client key for Prometheus (or monitoring.requireKey=false)" -}}
{{- end -}}
{{- end -}}

{{/* MiB the gateway container requests: the supervisor and demo upstream, plus every worker (docs/deploy.md, Memory). */}}
{{- define "hg.memoryRequestMi" -}}
{{- add .Values.memory.baseMi (mul .Values.workers .Values.memory.perWorkerMi) -}}
{{- end -}}

{{/* The gateway container's resources: .Values.resources with a memory request and limit that follow workers. */}}
{{- define "hg.resources" -}}
{{- $request := include "hg.memoryRequestMi" . | int -}}
{{- $limit := .Values.memory.limitMi | default (div (mul $request .Values.memory.limitPercent) 100) | int -}}
{{- $resources := deepCopy .Values.resources -}}
{{- $_ := set $resources "requests" (merge (dict "memory" (printf "%dMi" $request)) ($resources.requests | default dict)) -}}
{{- $_ := set $resources "limits" (merge (dict "memory" (printf "%dMi" $limit)) ($resources.limits | default dict)) -}}
{{- toYaml $resources -}}
{{- end -}}
