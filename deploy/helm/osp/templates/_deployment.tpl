{{/*
The Deployment of one component (worker or bridge); call with
(dict "root" $ "component" "worker" "values" .Values.worker).
*/}}
{{- define "osp.deployment" -}}
{{- $root := .root -}}
{{- $values := .values -}}
{{- $autoscaled := ne $values.autoscaling.mode "none" -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "osp.fullname" $root }}-{{ .component }}
  labels:
    {{- include "osp.componentLabels" . | nindent 4 }}
spec:
  {{- if not $autoscaled }}
  replicas: {{ $values.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "osp.componentSelectorLabels" . | nindent 6 }}
  strategy:
    {{- toYaml $values.strategy | nindent 4 }}
  template:
    metadata:
      labels:
        {{- include "osp.componentSelectorLabels" . | nindent 8 }}
        {{- with $values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/config: {{ include "osp.configChecksum" $root }}
        {{- if and (eq .component "worker") $values.manifest }}
        checksum/manifest: {{ $values.manifest | sha256sum }}
        {{- end }}
        {{- with include "osp.vaultAnnotations" $root }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- with $values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- include "osp.podSpecCommon" . | nindent 6 }}
      terminationGracePeriodSeconds: {{ include "osp.terminationGracePeriodSeconds" $root }}
      {{- with $values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      containers:
        - name: {{ .component }}
          image: {{ include "osp.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command:
            - /usr/local/bin/osp-{{ .component }}
          {{- include "osp.envFrom" $root | nindent 10 }}
          {{- with include "osp.env" . }}
          {{- . | nindent 10 }}
          {{- end }}
          ports:
            - name: http
              containerPort: {{ $root.Values.health.port }}
              protocol: TCP
          startupProbe:
            httpGet:
              path: /healthz
              port: http
            {{- toYaml $root.Values.probes.startup | nindent 12 }}
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            {{- toYaml $root.Values.probes.liveness | nindent 12 }}
          readinessProbe:
            httpGet:
              path: /readyz
              port: http
            {{- toYaml $root.Values.probes.readiness | nindent 12 }}
          {{- if gt (int $root.Values.shutdown.preStopSleepSeconds) 0 }}
          lifecycle:
            preStop:
              sleep:
                seconds: {{ $root.Values.shutdown.preStopSleepSeconds }}
          {{- end }}
          resources:
            {{- toYaml $values.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          {{- include "osp.volumeMounts" . | nindent 10 }}
      {{- include "osp.volumes" . | nindent 6 }}
      {{- with include "osp.topologySpread" . }}
      {{- . | nindent 6 }}
      {{- end }}
      {{- with $values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}
