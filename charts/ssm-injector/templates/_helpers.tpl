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

{{/* Selector labels of a component: (dict "ctx" $ "component" "webhook"|"hub"). */}}
{{- define "ssm-injector.componentSelectorLabels" -}}
app.kubernetes.io/name: {{ include "ssm-injector.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* All labels of a component's objects: (dict "ctx" $ "component" "webhook"|"hub"). */}}
{{- define "ssm-injector.componentLabels" -}}
helm.sh/chart: {{ include "ssm-injector.chart" .ctx }}
{{ include "ssm-injector.componentSelectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: ssm-injector
{{- end }}

{{- define "ssm-injector.selectorLabels" -}}
{{ include "ssm-injector.componentSelectorLabels" (dict "ctx" . "component" "webhook") }}
{{- end }}

{{- define "ssm-injector.labels" -}}
{{ include "ssm-injector.componentLabels" (dict "ctx" . "component" "webhook") }}
{{- end }}

{{- define "ssm-injector.hubSelectorLabels" -}}
{{ include "ssm-injector.componentSelectorLabels" (dict "ctx" . "component" "hub") }}
{{- end }}

{{- define "ssm-injector.hubLabels" -}}
{{ include "ssm-injector.componentLabels" (dict "ctx" . "component" "hub") }}
{{- end }}

{{/* The hub's name: FULLNAME-hub, at most 52 characters (a StatefulSet's pods carry a
     controller-revision-hash label of NAME-HASH, which must fit in 63). */}}
{{- define "ssm-injector.hubName" -}}
{{- printf "%s-hub" (include "ssm-injector.fullname" . | trunc 48 | trimSuffix "-") }}
{{- end }}

{{- define "ssm-injector.hubServiceAccountName" -}}
{{- if .Values.hub.serviceAccount.create }}
{{- default (include "ssm-injector.hubName" .) .Values.hub.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.hub.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Name of the Secret holding the hub's serving certificate. */}}
{{- define "ssm-injector.hubTlsSecretName" -}}
{{- if eq .Values.hub.tls.mode "secret" }}
{{- .Values.hub.tls.secret.name }}
{{- else }}
{{- printf "%s-tls" (include "ssm-injector.hubName" .) }}
{{- end }}
{{- end }}

{{/* The URL injected sidecars follow: the hub's Service. */}}
{{- define "ssm-injector.hubUrl" -}}
{{- printf "https://%s.%s.svc:%d" (include "ssm-injector.hubName" .) .Release.Namespace (int .Values.hub.port) }}
{{- end }}

{{/* Where the webhook pods mount the hub's CA (config hub-ca-file). */}}
{{- define "ssm-injector.hubCaDir" -}}
/hub-ca
{{- end }}

{{/* The volume with the hub's CA as ca.crt: the provided caBundle (a ConfigMap), else
     ca.crt of the hub's TLS Secret (cert-manager fills it; a provided Secret must have it). */}}
{{- define "ssm-injector.hubCaVolume" -}}
- name: hub-ca
  {{- if and (eq .Values.hub.tls.mode "secret") .Values.hub.tls.secret.caBundle }}
  configMap:
    name: {{ include "ssm-injector.hubName" . }}-ca
  {{- else }}
  secret:
    secretName: {{ include "ssm-injector.hubTlsSecretName" . }}
    items: [{key: ca.crt, path: ca.crt}]
  {{- end }}
{{- end }}

{{/* Does the chart make its own CA issuer (cert-manager mode somewhere, no issuerRef)? */}}
{{- define "ssm-injector.ownIssuer" -}}
{{- $certManager := or (eq .Values.tls.mode "certManager") (and .Values.hub.enabled (eq .Values.hub.tls.mode "certManager")) }}
{{- if and $certManager (not .Values.tls.certManager.issuerRef) }}true{{ end }}
{{- end }}

{{/* A cert-manager serving Certificate: (dict "ctx" $ "name" NAME "labels" LABELS).
     Valid for NAME.NAMESPACE.svc; its Secret is NAME-tls. */}}
{{- define "ssm-injector.servingCertificate" -}}
{{- $cm := .ctx.Values.tls.certManager }}
{{- $ns := .ctx.Release.Namespace -}}
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: {{ .name }}
  namespace: {{ $ns }}
  labels:
    {{- .labels | nindent 4 }}
spec:
  secretName: {{ .name }}-tls
  duration: {{ $cm.duration }}
  renewBefore: {{ $cm.renewBefore }}
  dnsNames:
    - {{ .name }}.{{ $ns }}.svc
    - {{ .name }}.{{ $ns }}.svc.cluster.local
  privateKey: {algorithm: ECDSA, size: 256, rotationPolicy: Always}
  usages: [server auth, digital signature]
  issuerRef:
    {{- if $cm.issuerRef }}
    {{- toYaml $cm.issuerRef | nindent 4 }}
    {{- else }}
    name: {{ include "ssm-injector.fullname" .ctx }}-ca
    kind: Issuer
    group: cert-manager.io
    {{- end }}
{{- end }}

{{/* A PodDisruptionBudget: (dict "ctx" $ "name" NAME "pdb" VALUES "labels" L "selector" S). */}}
{{- define "ssm-injector.pdb" -}}
{{- if .pdb.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .name }}
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- .labels | nindent 4 }}
spec:
  minAvailable: {{ .pdb.minAvailable }}
  selector:
    matchLabels:
      {{- .selector | nindent 6 }}
{{- end }}
{{- end }}

{{/* The pod-level securityContext of the webhook and hub pods. */}}
{{- define "ssm-injector.podSecurityContext" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  fsGroup: 65532
  seccompProfile: {type: RuntimeDefault}
{{- end }}

{{/* The container-level securityContext of the webhook and hub containers. */}}
{{- define "ssm-injector.containerSecurityContext" -}}
securityContext:
  runAsNonRoot: true
  readOnlyRootFilesystem: true
  allowPrivilegeEscalation: false
  privileged: false
  capabilities: {drop: [ALL]}
  seccompProfile: {type: RuntimeDefault}
{{- end }}

{{/* Scheduling of a component's pods: (dict "v" .Values.webhook|.Values.hub "selector" S):
     affinity (or the podAntiAffinity preset over nodes), topology spread, node selector,
     tolerations. */}}
{{- define "ssm-injector.scheduling" -}}
{{- $v := .v }}
{{- if $v.affinity }}
affinity:
  {{- toYaml $v.affinity | nindent 2 }}
{{- else if eq $v.podAntiAffinity "soft" }}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- .selector | nindent 14 }}
{{- else if eq $v.podAntiAffinity "hard" }}
affinity:
  podAntiAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- .selector | nindent 12 }}
{{- end }}
{{- with $v.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
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

{{/* The Secret holding the webhook's own CA (tls.mode self): made by the webhook, not by
     Helm, so `helm uninstall` leaves it. */}}
{{- define "ssm-injector.caSecretName" -}}
{{- printf "%s-webhook-ca" (include "ssm-injector.fullname" . | trunc 52 | trimSuffix "-") }}
{{- end }}

{{/* Is the hub's certificate issued from the webhook's CA (hub.tls.mode self)? Checked
     here: it needs tls.mode self. */}}
{{- define "ssm-injector.hubSelfTls" -}}
{{- if and .Values.hub.enabled (eq .Values.hub.tls.mode "self") }}
{{- if ne .Values.tls.mode "self" }}
{{- fail (printf "hub.tls.mode self needs tls.mode self (the hub's certificate comes from the webhook's own CA), not %s: set hub.tls.mode to certManager or secret" .Values.tls.mode) }}
{{- end }}true
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
{{- with .Values.agent.region }}
region: {{ . | quote }}
{{- end }}
{{- if .Values.hub.enabled }}
hub-url: {{ include "ssm-injector.hubUrl" . | quote }}
{{- if not (include "ssm-injector.hubSelfTls" .) }}
hub-ca-file: {{ include "ssm-injector.hubCaDir" . }}/ca.crt
{{- end }}
hub-audience: {{ .Values.hub.audience | quote }}
{{- end }}
{{- end }}

{{/* A ServiceAccount: (dict "ctx" $ "name" N "labels" L "annotations" A "automount" BOOL). */}}
{{- define "ssm-injector.serviceAccount" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ .name }}
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- .labels | nindent 4 }}
  {{- with .annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: {{ .automount }}
{{- end }}
