{{- define "pyroclast.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "pyroclast.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "pyroclast.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pyroclast
{{- end -}}

{{- define "pyroclast.serviceAccountName" -}}
{{- default (include "pyroclast.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "pyroclast.progressHost" -}}
{{- printf "%s-progress.%s.svc" (include "pyroclast.fullname" .) .Release.Namespace -}}
{{- end -}}

{{- define "pyroclast.progressSecret" -}}
{{- default (printf "%s-progress-tls" (include "pyroclast.fullname" .)) .Values.progress.tls.secretName -}}
{{- end -}}
