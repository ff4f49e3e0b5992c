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
