{{/* Names, labels and the pieces the worker, bridge and migration pods share. */}}

{{- define "osp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "osp.fullname" -}}
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

{{- define "osp.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "osp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "osp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "osp.labels" -}}
helm.sh/chart: {{ include "osp.chart" . }}
{{ include "osp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: osp
{{- end -}}

{{/* Labels of one component; call with (dict "root" $ "component" "worker"). */}}
{{- define "osp.componentSelectorLabels" -}}
{{ include "osp.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "osp.componentLabels" -}}
{{ include "osp.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "osp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "osp.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "osp.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "osp.secretName" -}}
{{- if .Values.secrets.existingSecret -}}
{{- .Values.secrets.existingSecret -}}
{{- else if .Values.secrets.create -}}
{{- include "osp.fullname" . -}}
{{- end -}}
{{- end -}}

{{- define "osp.terminationGracePeriodSeconds" -}}
{{- add .Values.shutdown.preStopSleepSeconds .Values.shutdown.graceSeconds .Values.shutdown.marginSeconds -}}
{{- end -}}

{{- define "osp.configPath" -}}
{{- printf "/vault/secrets/%s" .Values.vault.fileName -}}
{{- end -}}

{{/*
The Vault Agent template that renders the OSP_CONFIG file: top-level dotted TOML keys
(`database.url = "..."`), each value passed through toJSON, since a JSON string is also a
TOML basic string with every quote and backslash escaped.
*/}}
{{- define "osp.vaultTemplate" -}}
{{- if .Values.vault.template -}}
{{- .Values.vault.template -}}
{{- else -}}
{{- $data := ternary ".Data.data" ".Data" (eq (int .Values.vault.kvVersion) 2) -}}
# Rendered by Vault Agent for OSP (OSP_CONFIG). Environment variables override it.
{{- range .Values.vault.secrets }}
{{ printf "{{- with secret %q }}" .path }}
{{- range $key, $field := .keys }}
{{ printf "{{- with index %s %q }}" $data $field }}
{{ printf "%s = {{ toJSON . }}" $key }}
{{ "{{- end }}" }}
{{- end }}
{{ "{{- end }}" }}
{{- end }}
{{- with .Values.vault.extraTemplate }}
{{ . }}
{{- end }}
{{- end -}}
{{- end -}}

{{/* The pod annotations that turn Vault Agent injection on. */}}
{{- define "osp.vaultAnnotations" -}}
{{- if .Values.vault.enabled -}}
{{- $file := .Values.vault.fileName -}}
vault.hashicorp.com/agent-inject: "true"
vault.hashicorp.com/role: {{ .Values.vault.role | quote }}
vault.hashicorp.com/agent-pre-populate-only: {{ .Values.vault.prePopulateOnly | quote }}
{{- $first := first (default (list (dict "path" "secret")) .Values.vault.secrets) }}
vault.hashicorp.com/agent-inject-secret-{{ $file }}: {{ $first.path | quote }}
vault.hashicorp.com/agent-inject-template-{{ $file }}: |
{{ include "osp.vaultTemplate" . | indent 2 }}
{{- with .Values.vault.annotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}
{{- end -}}

{{/*
Pod settings shared by the worker and bridge Deployments and the migration Job; call with
(dict "root" $ "component" "worker" "values" .Values.worker).
*/}}
{{- define "osp.podSpecCommon" -}}
{{- $root := .root -}}
serviceAccountName: {{ include "osp.serviceAccountName" $root }}
automountServiceAccountToken: {{ or $root.Values.serviceAccount.automountToken $root.Values.vault.enabled }}
enableServiceLinks: false
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* envFrom for every OSP container: the ConfigMap, then the Secret (if any). */}}
{{- define "osp.envFrom" -}}
envFrom:
  - configMapRef:
      name: {{ include "osp.fullname" . }}
{{- with include "osp.secretName" . }}
  - secretRef:
      name: {{ . }}
{{- end }}
{{- end -}}

{{/* Environment variables that are not in the ConfigMap; call like osp.podSpecCommon. */}}
{{- define "osp.env" -}}
{{- $root := .root -}}
{{- $env := list -}}
{{- if $root.Values.vault.enabled -}}
{{- $env = append $env (dict "name" "OSP_CONFIG" "value" (include "osp.configPath" $root)) -}}
{{- end -}}
{{- if and (eq .component "worker") $root.Values.worker.manifest -}}
{{- $env = append $env (dict "name" "MANIFEST_PATH" "value" "/etc/osp/manifest/manifest.json") -}}
{{- end -}}
{{- range $name, $value := .values.env -}}
{{- $env = append $env (dict "name" $name "value" (toString $value)) -}}
{{- end -}}
{{- with $env -}}
env:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Volumes of every OSP pod; call like osp.podSpecCommon. */}}
{{- define "osp.volumes" -}}
{{- $root := .root -}}
volumes:
  - name: tmp
    emptyDir:
      medium: Memory
      sizeLimit: 16Mi
{{- if and (eq .component "worker") $root.Values.worker.manifest }}
  - name: manifest
    configMap:
      name: {{ include "osp.fullname" $root }}-manifest
{{- end }}
{{- with $root.Values.temporalTls.existingSecret }}
  - name: temporal-tls
    secret:
      secretName: {{ . }}
      defaultMode: 0440
{{- end }}
{{- end -}}

{{- define "osp.volumeMounts" -}}
{{- $root := .root -}}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- if and (eq .component "worker") $root.Values.worker.manifest }}
  - name: manifest
    mountPath: /etc/osp/manifest
    readOnly: true
{{- end }}
{{- if $root.Values.temporalTls.existingSecret }}
  - name: temporal-tls
    mountPath: /etc/osp/tls
    readOnly: true
{{- end }}
{{- end -}}

{{/* The generated topology spread of one component; call like osp.podSpecCommon. */}}
{{- define "osp.topologySpread" -}}
{{- $root := .root -}}
{{- if .values.topologySpreadConstraints -}}
topologySpreadConstraints:
  {{- toYaml .values.topologySpreadConstraints | nindent 2 }}
{{- else if $root.Values.topologySpread.enabled -}}
topologySpreadConstraints:
{{- range $root.Values.topologySpread.topologyKeys }}
  - maxSkew: {{ $root.Values.topologySpread.maxSkew }}
    topologyKey: {{ . }}
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "osp.componentSelectorLabels" (dict "root" $root "component" $.component) | nindent 8 }}
    matchLabelKeys:
      - pod-template-hash
{{- end }}
{{- end -}}
{{- end -}}

{{/* The checksum of everything the pods read at start, so that a change rolls them. */}}
{{- define "osp.configChecksum" -}}
{{- $parts := list (include (print .Template.BasePath "/configmap.yaml") .) -}}
{{- $parts = append $parts (include (print .Template.BasePath "/secret.yaml") .) -}}
{{- sha256sum (join "\n---\n" $parts) -}}
{{- end -}}
