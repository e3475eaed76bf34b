{{- define "podnat.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "podnat.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "podnat.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "podnat.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "podnat.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "podnat.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "podnat.selectorLabels" -}}
app.kubernetes.io/name: {{ include "podnat.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "podnat.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "podnat.tlsSecret" -}}
{{ include "podnat.fullname" . }}-tls
{{- end }}

{{/* The names the serving certificate must carry: the Service's, plus tls.extraDNSNames. */}}
{{- define "podnat.dnsNames" -}}
{{- $svc := include "podnat.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- $names := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) -}}
{{- concat $names .Values.tls.extraDNSNames | toJson -}}
{{- end }}

{{/* What both webhooks share; called with (dict "root" $ "caBundle" CA). */}}
{{- define "podnat.webhookCommon" -}}
admissionReviewVersions: [v1]
sideEffects: None
failurePolicy: {{ .root.Values.webhook.failurePolicy }}
timeoutSeconds: {{ .root.Values.webhook.timeoutSeconds }}
reinvocationPolicy: {{ .root.Values.webhook.reinvocationPolicy }}
clientConfig:
  {{- if .root.Values.webhook.url }}
  url: {{ .root.Values.webhook.url }}
  {{- else }}
  service:
    name: {{ include "podnat.fullname" .root }}
    namespace: {{ .root.Release.Namespace }}
    path: /mutate
    port: 443
  {{- end }}
  {{- if not .root.Values.certManager.enabled }}
  caBundle: {{ .caBundle }}
  {{- end }}
rules:
  - apiGroups: [""]
    apiVersions: [v1]
    operations: [CREATE, UPDATE]
    resources: [pods]
    scope: Namespaced
# Only the CREATE of a pod with a podnat.io/* annotation, and an UPDATE that adds, changes or
# removes a podnat.io/* value, reach the webhook: every other request is admitted even while
# the webhook is down (a label or finalizer change of an annotated pod too), and invalid podnat
# values still get the parser's denial.
matchConditions:
  - name: podnat-annotations-set-or-changed
    expression: >-
      request.operation == 'CREATE'
      ? (has(object.metadata.annotations) &&
         object.metadata.annotations.exists(k, k.startsWith('podnat.io/')))
      : ((has(object.metadata.annotations) &&
          object.metadata.annotations.exists(k, k.startsWith('podnat.io/') &&
            !(has(oldObject.metadata.annotations) && k in oldObject.metadata.annotations &&
              oldObject.metadata.annotations[k] == object.metadata.annotations[k]))) ||
         (has(oldObject.metadata.annotations) &&
          oldObject.metadata.annotations.exists(k, k.startsWith('podnat.io/') &&
            !(has(object.metadata.annotations) && k in object.metadata.annotations))))
{{- end }}

{{/* The agent's objects (mode: agent): its DaemonSet, ServiceAccount, RBAC and Service. */}}
{{- define "podnat.agentName" -}}
{{- printf "%s-agent" (include "podnat.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "podnat.agentSelectorLabels" -}}
{{ include "podnat.selectorLabels" . }}
app.kubernetes.io/component: agent
{{- end }}

{{/* The port of agent.listen ("0.0.0.0:9102", "[::]:9102"): probes and the metrics Service. */}}
{{- define "podnat.agentPort" -}}
{{ splitList ":" .Values.agent.listen | last }}
{{- end }}
