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
The NATS URL(s) Hivewire processes connect to: the in-chart Service (tls:// with nats.tls), or
externalNats.url.
*/}}
{{- define "hivewire.natsUrl" -}}
{{- if .Values.nats.enabled }}
{{- printf "%s://%s:4222" (ternary "tls" "nats" (include "hivewire.natsTls" . | eq "true")) (include "hivewire.nats.fullname" .) }}
{{- else }}
{{- required "externalNats.url is required when nats.enabled is false (e.g. --set externalNats.url=nats://my-nats:4222)" .Values.externalNats.url }}
{{- end }}
{{- end }}

{{/*
NATS credentials: the Secret every process (and the in-chart server) loads them from, or nothing.
Fails on settings that cannot work.
*/}}
{{- define "hivewire.natsAuthSecretName" -}}
{{- $auth := .Values.nats.auth }}
{{- if not (has $auth.method (list "" "password" "token")) }}
{{- fail (printf "nats.auth.method must be \"\", \"password\" or \"token\", not %q" $auth.method) }}
{{- end }}
{{- if $auth.method }}
{{- if $auth.existingSecret }}
{{- $auth.existingSecret }}
{{- else }}
{{- $secret := ternary $auth.password $auth.token (eq $auth.method "password") }}
{{- $key := ternary "password" "token" (eq $auth.method "password") }}
{{- if not $secret }}
{{- fail (printf "nats.auth.method %s needs nats.auth.%s (or nats.auth.existingSecret)" $auth.method $key) }}
{{- end }}
{{- range $name, $value := (ternary (dict "user" $auth.user "password" $auth.password) (dict "token" $auth.token) (eq $auth.method "password")) }}
{{- if not (regexMatch "^[A-Za-z][A-Za-z0-9._-]*$" (toString $value)) }}
{{- fail (printf "nats.auth.%s must start with a letter and hold only letters, digits, \".\", \"_\" and \"-\": nats-server reads it through its configuration parser" $name) }}
{{- end }}
{{- end }}
{{- printf "%s-nats-auth" (include "hivewire.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
"true" when NATS connections use TLS. Fails on settings that cannot work.
*/}}
{{- define "hivewire.natsTls" -}}
{{- $tls := .Values.nats.tls }}
{{- if and $tls.enabled (not $tls.secretName) }}
{{- fail "nats.tls.enabled needs nats.tls.secretName: a kubernetes.io/tls Secret with tls.crt, tls.key and ca.crt (e.g. from a cert-manager Certificate)" }}
{{- end }}
{{- if and $tls.clientSecretName (not $tls.enabled) }}
{{- fail "nats.tls.clientSecretName (mutual TLS) needs nats.tls.enabled" }}
{{- end }}
{{- $tls.enabled | toString }}
{{- end }}

{{/*
Where the Hivewire pods find the NATS TLS files: the CA (ca.crt of nats.tls.secretName, never its
key) and, for mutual TLS, the client certificate.
*/}}
{{- define "hivewire.natsTlsDir" -}}
/etc/hivewire/nats-tls
{{- end }}

{{- define "hivewire.natsTlsVolumes" -}}
{{- if eq (include "hivewire.natsTls" .) "true" }}
- name: nats-tls
  projected:
    sources:
      - secret:
          name: {{ .Values.nats.tls.secretName }}
          items:
            - key: ca.crt
              path: ca.crt
      {{- with .Values.nats.tls.clientSecretName }}
      - secret:
          name: {{ . }}
          items:
            - key: tls.crt
              path: client.crt
            - key: tls.key
              path: client.key
      {{- end }}
{{- end }}
{{- end }}

{{- define "hivewire.natsTlsMounts" -}}
{{- if eq (include "hivewire.natsTls" .) "true" }}
- name: nats-tls
  mountPath: {{ include "hivewire.natsTlsDir" . }}
  readOnly: true
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
  {{- with (include "hivewire.natsAuthSecretName" .) }}
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
Writable scratch space under the read-only root filesystem (/tmp and the image's home, the
working directory), and the NATS TLS files when there are any.
*/}}
{{- define "hivewire.scratchMounts" -}}
- name: tmp
  mountPath: /tmp
- name: home
  mountPath: /home/hivewire
{{- include "hivewire.natsTlsMounts" . }}
{{- end }}

{{- define "hivewire.scratchVolumes" -}}
- name: tmp
  emptyDir: {}
- name: home
  emptyDir: {}
{{- include "hivewire.natsTlsVolumes" . }}
{{- end }}

{{/*
Pod annotations: restart when the shared settings change; Prometheus scrape hints when asked.
Called with (dict "root" $ "port" <metrics port or nil> "extra" <podAnnotations>).
*/}}
{{- define "hivewire.podAnnotations" -}}
checksum/env: {{ include (print .root.Template.BasePath "/env-configmap.yaml") .root | sha256sum }}
checksum/llm: {{ include (print .root.Template.BasePath "/llm-secret.yaml") .root | sha256sum }}
checksum/nats-auth: {{ include (print .root.Template.BasePath "/nats-auth-secret.yaml") .root | sha256sum }}
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

{{/*
An agent's MCP tool servers (HIVEWIRE_MCP_SERVERS, docs/mcp.md) as env: <agent>.mcpServers as JSON,
or the key HIVEWIRE_MCP_SERVERS of the Secret <agent>.mcpServersSecret. Called with
(dict "component" NAME "values" <the agent's values>); fails on two sources for the variable.
*/}}
{{- define "hivewire.mcpServersEnv" -}}
{{- $v := .values }}
{{- if and $v.mcpServers $v.mcpServersSecret }}
{{- fail (printf "%s.mcpServers and %s.mcpServersSecret both give HIVEWIRE_MCP_SERVERS: keep one" .component .component) }}
{{- end }}
{{- if and (or $v.mcpServers $v.mcpServersSecret) (hasKey ($v.env | default dict) "HIVEWIRE_MCP_SERVERS") }}
{{- fail (printf "%s.env.HIVEWIRE_MCP_SERVERS and %s.mcpServers (or .mcpServersSecret) both give HIVEWIRE_MCP_SERVERS: keep one" .component .component) }}
{{- end }}
{{- with $v.mcpServers }}
- name: HIVEWIRE_MCP_SERVERS
  value: {{ toJson . | quote }}
{{- end }}
{{- with $v.mcpServersSecret }}
- name: HIVEWIRE_MCP_SERVERS
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: HIVEWIRE_MCP_SERVERS
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
{{- if not (or (dig "autoscaling" "enabled" false .values) (dig "keda" "enabled" false .values)) }}
replicas: {{ .values.replicas }}
{{- end }}
{{- end }}

{{- define "hivewire.scaling" -}}
{{- $component := dict "root" .root "component" .component }}
{{- $name := include "hivewire.component.fullname" $component }}
{{- $scale := .values.autoscaling }}
{{- $fewest := .values.replicas }}
{{- if and $scale.enabled (dig "keda" "enabled" false .values) }}
{{- fail (printf "%s.autoscaling and %s.keda would both scale Deployment %s (KEDA makes a HorizontalPodAutoscaler of its own): enable one; %s.keda.cpuUtilization adds CPU to the ScaledObject" .component .component $name .component) }}
{{- end }}
{{- if dig "keda" "enabled" false .values }}
{{- $fewest = .values.keda.minReplicas }}
{{- include "hivewire.scaledObject" . }}
{{- end }}
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


{{/*
An agent's KEDA ScaledObject: replicas from the lag of its durable-task consumer on HW_TASKS
(pending + unacknowledged tasks, read from NATS's monitoring port), and CPU as a second trigger
when keda.cpuUtilization is set. Called with (dict "root" $ "component" AGENT "values" ITS_VALUES);
the agent's name is the component's.
*/}}
{{- define "hivewire.scaledObject" -}}
{{- $component := dict "root" .root "component" .component }}
{{- $name := include "hivewire.component.fullname" $component }}
{{- $keda := .values.keda }}
{{- if lt (int $keda.minReplicas) 1 }}
{{- fail (printf "%s.keda.minReplicas must be at least 1: conversations reach an agent by request/reply, which the task backlog does not count" .component) }}
{{- end }}
{{- if gt (int $keda.minReplicas) (int $keda.maxReplicas) }}
{{- fail (printf "%s.keda: minReplicas (%v) is above maxReplicas (%v)" .component $keda.minReplicas $keda.maxReplicas) }}
{{- end }}
{{- if lt (int $keda.lagThreshold) 1 }}
{{- fail (printf "%s.keda.lagThreshold must be at least 1" .component) }}
{{- end }}
{{- if and $keda.cpuUtilization (not (dig "requests" "cpu" "" (.values.resources | default dict))) }}
{{- fail (printf "%s.keda.cpuUtilization needs %s.resources.requests.cpu: the CPU target is a share of it" .component .component) }}
{{- end }}
{{- $endpoint := .root.Values.keda.natsMonitoringEndpoint }}
{{- if not $endpoint }}
{{- if not .root.Values.nats.enabled }}
{{- fail (printf "%s.keda needs keda.natsMonitoringEndpoint (host:port of your NATS server's monitoring port) when nats.enabled is false" .component) }}
{{- end }}
{{- $endpoint = printf "%s.%s.svc:8222" (include "hivewire.nats.fullname" .root) .root.Release.Namespace }}
{{- end }}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: {{ $name }}
  labels:
    {{- include "hivewire.component.labels" $component | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $name }}
  minReplicaCount: {{ $keda.minReplicas }}
  maxReplicaCount: {{ $keda.maxReplicas }}
  pollingInterval: {{ $keda.pollingInterval }}
  cooldownPeriod: {{ $keda.cooldownPeriod }}
  triggers:
    # The agent's durable consumer (bus/subjects.py task_consumer), shared by its replicas.
    - type: nats-jetstream
      metadata:
        natsServerMonitoringEndpoint: {{ $endpoint | quote }}
        account: {{ .root.Values.keda.account | quote }}
        stream: HW_TASKS
        consumer: {{ printf "hw-tasks-%s" .component | quote }}
        lagThreshold: {{ $keda.lagThreshold | toString | quote }}
    {{- if $keda.cpuUtilization }}
    - type: cpu
      metricType: Utilization
      metadata:
        value: {{ $keda.cpuUtilization | toString | quote }}
    {{- end }}
{{- end }}

{{/*
The TCP port of a URL: its own, else the scheme's (http 80, https 443), else the default given.
Called with (list URL DEFAULT).
*/}}
{{- define "hivewire.urlPort" -}}
{{- $url := urlParse (index . 0) }}
{{- $host := $url.host | default "" }}
{{- if regexMatch ":[0-9]+$" $host }}
{{- regexFind "[0-9]+$" $host }}
{{- else if eq $url.scheme "https" }}443
{{- else if eq $url.scheme "http" }}80
{{- else }}{{ index . 1 }}
{{- end }}
{{- end }}

{{/*
The egress every Hivewire pod needs: DNS, NATS, Redis (unless "redis" is false), the OTLP
collector, and networkPolicy.extraEgress. Called with (dict "root" $ "redis" BOOL).
*/}}
{{- define "hivewire.networkPolicy.egress" -}}
{{- $root := .root }}
{{- $values := $root.Values }}
# DNS, wherever the cluster serves it.
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- if $values.nats.enabled }}
- to:
    - podSelector:
        matchLabels:
          {{- include "hivewire.nats.selectorLabels" $root | nindent 10 }}
  ports:
    - port: 4222
      protocol: TCP
{{- else }}
# Your NATS server(s): externalNats.url's ports.
- ports:
    {{- range $url := splitList "," (include "hivewire.natsUrl" $root) }}
    {{- if trim $url }}
    - port: {{ include "hivewire.urlPort" (list (trim $url) 4222) }}
      protocol: TCP
    {{- end }}
    {{- end }}
{{- end }}
{{- if .redis }}
{{- if $values.redis.enabled }}
- to:
    - podSelector:
        matchLabels:
          {{- include "hivewire.component.selectorLabels" (dict "root" $root "component" "redis") | nindent 10 }}
  ports:
    - port: 6379
      protocol: TCP
{{- else if $values.redis.url }}
# Your Redis: redis.url's port.
- ports:
    - port: {{ include "hivewire.urlPort" (list $values.redis.url 6379) }}
      protocol: TCP
{{- end }}
{{- end }}
{{- $otlp := list }}
{{- range $name := list "OTEL_EXPORTER_OTLP_ENDPOINT" "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT" }}
{{- with index $values.otel $name }}
{{- $otlp = append $otlp (include "hivewire.urlPort" (list . 4318)) }}
{{- end }}
{{- end }}
{{- with uniq $otlp }}
# The OpenTelemetry collector (otel.OTEL_EXPORTER_OTLP_*ENDPOINT).
- ports:
    {{- range . }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- end }}
{{- with $values.networkPolicy.extraEgress }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
A component's NetworkPolicy: it selects the component's pods and denies whatever its rules do not
allow. Called with (dict "root" $ "component" NAME "ingress" YAML_RULES "egress" YAML_RULES).
*/}}
{{- define "hivewire.networkPolicy" -}}
{{- $component := dict "root" .root "component" .component }}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "hivewire.component.fullname" $component }}
  labels:
    {{- include "hivewire.component.labels" $component | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- if eq .component "nats" }}
      {{- include "hivewire.nats.selectorLabels" .root | nindent 6 }}
      {{- else }}
      {{- include "hivewire.component.selectorLabels" $component | nindent 6 }}
      {{- end }}
  policyTypes: ["Ingress", "Egress"]
  {{- with trim .ingress }}
  ingress:
    {{- . | nindent 4 }}
  {{- else }}
  ingress: []
  {{- end }}
  {{- with trim .egress }}
  egress:
    {{- . | nindent 4 }}
  {{- else }}
  egress: []
  {{- end }}
{{- end }}
