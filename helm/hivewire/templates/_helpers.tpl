{{/*
Chart name, overridable with nameOverride.
*/}}
{{- define "hivewire.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: "<release>-hivewire", or just the release name when it already
contains the chart name. Truncated to 63 characters (the DNS label limit).
*/}}
{{- define "hivewire.fullname" -}}
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

{{/*
Chart label value: name-version.
*/}}
{{- define "hivewire.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels for every resource.
*/}}
{{- define "hivewire.labels" -}}
helm.sh/chart: {{ include "hivewire.chart" . }}
{{ include "hivewire.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hivewire
{{- end }}

{{/*
Selector labels: stable across upgrades (selectors are immutable).
Components add app.kubernetes.io/component on top.
*/}}
{{- define "hivewire.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hivewire.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
NATS: resource name ("<release>-nats"), labels and selector labels.
*/}}
{{- define "hivewire.nats.fullname" -}}
{{- printf "%s-nats" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hivewire.nats.headlessName" -}}
{{- printf "%s-headless" (include "hivewire.nats.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hivewire.nats.labels" -}}
{{ include "hivewire.labels" . }}
app.kubernetes.io/component: nats
{{- end }}

{{- define "hivewire.nats.selectorLabels" -}}
{{ include "hivewire.selectorLabels" . }}
app.kubernetes.io/component: nats
{{- end }}

{{/*
A nats-server size value (e.g. 1MB, 5Gi, or a byte count). Values files parse plain
numbers as floats, which would print as 1.048576e+06, so print those as integers.
*/}}
{{- define "hivewire.natsSize" -}}
{{- if or (kindIs "float64" .) (kindIs "int64" .) (kindIs "int" .) }}
{{- int64 . }}
{{- else }}
{{- . }}
{{- end }}
{{- end }}

{{/*
Name of the ConfigMap with HIVEWIRE_* settings that gateway and agent Deployments load
with envFrom.
*/}}
{{- define "hivewire.envConfigMapName" -}}
{{- printf "%s-env" (include "hivewire.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The NATS URL(s) Hivewire processes connect to: the in-chart Service, or externalNats.url.
*/}}
{{- define "hivewire.natsUrl" -}}
{{- if .Values.nats.enabled }}
{{- printf "nats://%s:4222" (include "hivewire.nats.fullname" .) }}
{{- else }}
{{- required "externalNats.url is required when nats.enabled is false (e.g. --set externalNats.url=nats://my-nats:4222)" .Values.externalNats.url }}
{{- end }}
{{- end }}

{{/*
The Hivewire image every component runs (the tag defaults to the chart's appVersion).
*/}}
{{- define "hivewire.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{/*
A component's resource name, labels and selector labels. Called with
(dict "root" $ "component" "gateway").
*/}}
{{- define "hivewire.component.fullname" -}}
{{- printf "%s-%s" (include "hivewire.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hivewire.component.labels" -}}
{{ include "hivewire.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "hivewire.component.selectorLabels" -}}
{{ include "hivewire.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
The Redis URL every process gets: the in-chart Redis, redis.url, or nothing.
*/}}
{{- define "hivewire.redisUrl" -}}
{{- if .Values.redis.enabled }}
{{- printf "redis://%s:6379/0" (include "hivewire.component.fullname" (dict "root" . "component" "redis")) }}
{{- else }}
{{- .Values.redis.url }}
{{- end }}
{{- end }}

{{/*
The Secret with the model endpoint (HIVEWIRE_LLM_*), or nothing (offline mode).
*/}}
{{- define "hivewire.llmSecretName" -}}
{{- if .Values.llm.existingSecret }}
{{- .Values.llm.existingSecret }}
{{- else if .Values.llm.baseUrl }}
{{- printf "%s-llm" (include "hivewire.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
Pod-level settings shared by every Hivewire pod: the image's non-root user, no service account
token, no service links (Kubernetes would otherwise inject *_PORT variables for every Service).
Called with (dict "root" $ "grace" <terminationGracePeriodSeconds> "component" "gateway"); fails
when the grace period does not exceed drainGrace.
*/}}
{{- define "hivewire.podSpec" -}}
{{- if le (float64 .grace) (float64 .root.Values.drainGrace) }}
{{- fail (printf "%s.terminationGracePeriodSeconds (%v) must be greater than drainGrace (%v): a draining process would be killed" .component .grace .root.Values.drainGrace) }}
{{- end }}
automountServiceAccountToken: false
enableServiceLinks: false
terminationGracePeriodSeconds: {{ .grace }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  fsGroupChangePolicy: OnRootMismatch
  seccompProfile:
    type: RuntimeDefault
{{- end }}

{{/*
Container-level settings shared by every Hivewire container: the image, settings from the -env
ConfigMap and the model Secret, a read-only root filesystem.
*/}}
{{- define "hivewire.container" -}}
image: {{ include "hivewire.image" . | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
envFrom:
  - configMapRef:
      name: {{ include "hivewire.envConfigMapName" . }}
  {{- with (include "hivewire.llmSecretName" .) }}
  - secretRef:
      name: {{ . }}
  {{- end }}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
{{- end }}

{{/*
Writable scratch space under the read-only root filesystem: /tmp and the image's home (the
working directory).
*/}}
{{- define "hivewire.scratchMounts" -}}
- name: tmp
  mountPath: /tmp
- name: home
  mountPath: /home/hivewire
{{- end }}

{{- define "hivewire.scratchVolumes" -}}
- name: tmp
  emptyDir: {}
- name: home
  emptyDir: {}
{{- end }}

{{/*
Pod annotations: restart when the shared settings change; Prometheus scrape hints when asked.
Called with (dict "root" $ "port" <metrics port or nil> "extra" <podAnnotations>).
*/}}
{{- define "hivewire.podAnnotations" -}}
checksum/env: {{ include (print .root.Template.BasePath "/env-configmap.yaml") .root | sha256sum }}
checksum/llm: {{ include (print .root.Template.BasePath "/llm-secret.yaml") .root | sha256sum }}
{{- if and .port .root.Values.prometheusAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
A map of environment variables as a container env list (sorted by name).
*/}}
{{- define "hivewire.envList" -}}
{{- range $name, $value := . }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/*
An agent's /metrics port (HIVEWIRE_METRICS_PORT) as env, port and liveness probe.
*/}}
{{- define "hivewire.agentMetricsEnv" -}}
{{- if .Values.agentMetrics.enabled }}
- name: HIVEWIRE_METRICS_HOST
  value: "0.0.0.0"
- name: HIVEWIRE_METRICS_PORT
  value: {{ .Values.agentMetrics.port | toString | quote }}
{{- end }}
{{- end }}

{{- define "hivewire.agentMetricsPort" -}}
{{- if .Values.agentMetrics.enabled }}
ports:
  - name: metrics
    containerPort: {{ .Values.agentMetrics.port }}
# The /metrics server is part of the agent process: it answers while the process lives.
livenessProbe:
  httpGet:
    path: /metrics
    port: metrics
  initialDelaySeconds: 20
  periodSeconds: 20
  timeoutSeconds: 5
  failureThreshold: 3
{{- end }}
{{- end }}

{{/*
How a stateless component (gateway, triage, answer) scales: `replicas`, or a
HorizontalPodAutoscaler on CPU when `autoscaling.enabled` (the Deployment then leaves its
replica count to it); and a PodDisruptionBudget while at least two replicas run.
Called with (dict "root" $ "component" NAME "values" ITS_VALUES).
*/}}
{{- define "hivewire.replicas" -}}
{{- if not .values.autoscaling.enabled }}
replicas: {{ .values.replicas }}
{{- end }}
{{- end }}

{{- define "hivewire.scaling" -}}
{{- $component := dict "root" .root "component" .component }}
{{- $name := include "hivewire.component.fullname" $component }}
{{- $scale := .values.autoscaling }}
{{- $fewest := .values.replicas }}
{{- if $scale.enabled }}
{{- $fewest = $scale.minReplicas }}
{{- if gt (int $scale.minReplicas) (int $scale.maxReplicas) }}
{{- fail (printf "%s.autoscaling: minReplicas (%v) is above maxReplicas (%v)" .component $scale.minReplicas $scale.maxReplicas) }}
{{- end }}
{{- if not (dig "requests" "cpu" "" (.values.resources | default dict)) }}
{{- fail (printf "%s.autoscaling needs %s.resources.requests.cpu: the CPU target is a share of it" .component .component) }}
{{- end }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $name }}
  labels:
    {{- include "hivewire.component.labels" $component | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $name }}
  minReplicas: {{ $scale.minReplicas }}
  maxReplicas: {{ $scale.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $scale.targetCPUUtilizationPercentage }}
{{- end }}
{{- if and .values.podDisruptionBudget.enabled (gt (int $fewest) 1) }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  labels:
    {{- include "hivewire.component.labels" $component | nindent 4 }}
spec:
  maxUnavailable: {{ .values.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "hivewire.component.selectorLabels" $component | nindent 6 }}
{{- end }}
{{- end }}
