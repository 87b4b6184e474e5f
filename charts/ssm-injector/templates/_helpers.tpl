{{/* Chart name. */}}
{{- define "ssm-injector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: RELEASE-NAME, or RELEASE when it already holds the name. */}}
{{- define "ssm-injector.fullname" -}}
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

{{- define "ssm-injector.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ssm-injector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ssm-injector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end }}

{{- define "ssm-injector.labels" -}}
helm.sh/chart: {{ include "ssm-injector.chart" . }}
{{ include "ssm-injector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ssm-injector
{{- end }}

{{- define "ssm-injector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ssm-injector.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference: repository@digest, else repository:tag (tag defaults to appVersion). */}}
{{- define "ssm-injector.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Name of the Secret holding the serving certificate. */}}
{{- define "ssm-injector.tlsSecretName" -}}
{{- if eq .Values.tls.mode "secret" }}
{{- .Values.tls.secret.name }}
{{- else }}
{{- printf "%s-tls" (include "ssm-injector.fullname" .) }}
{{- end }}
{{- end }}

{{/* Namespaces the webhook never sees or injects: the configured ones plus the release's. */}}
{{- define "ssm-injector.excludedNamespaces" -}}
{{- $ns := concat .Values.webhook.excludedNamespaces (list .Release.Namespace) | uniq }}
{{- toJson $ns }}
{{- end }}

{{/* The webhook's config file (src/webhook/config.rs keys). */}}
{{- define "ssm-injector.config" -}}
image: {{ default (include "ssm-injector.image" .) .Values.agent.image | quote }}
native-sidecar: {{ .Values.agent.nativeSidecar }}
excluded-namespaces: {{ include "ssm-injector.excludedNamespaces" . }}
namespace-prefixes: {{ toJson .Values.policy.namespacePrefixes }}
default-interval: {{ .Values.agent.defaultInterval | quote }}
default-paths: {{ toJson .Values.agent.defaultPaths }}
{{- $req := .Values.agent.resources.requests | default dict }}
{{- $lim := .Values.agent.resources.limits | default dict }}
{{- $res := dict "cpu-request" (toString ($req.cpu | default "")) "memory-request" (toString ($req.memory | default "")) "cpu-limit" (toString ($lim.cpu | default "")) "memory-limit" (toString ($lim.memory | default "")) }}
default-resources: {{ toJson $res }}
{{- end }}
