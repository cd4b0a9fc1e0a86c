{{/* Shared pieces of the aggregator chart's objects. */}}

{{- define "aggregator.labels" -}}
app.kubernetes.io/part-of: data-aggregator
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

{{/* The image reference: by digest when one is given (a tag can be re-pushed, a digest cannot). */}}
{{- define "aggregator.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
{{- end }}

{{/* Pod-level hardening shared by every pod of this chart (UID 10001 is the image's user). */}}
{{- define "aggregator.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "aggregator.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end }}

{{/* Instance for the maintenance jobs (migrate, retention): storage only; they launch no runs. */}}
{{- define "aggregator.maintenanceInstance" -}}
storage:
  postgres:
    postgres_url:
      env: DAGSTER_PG_URL
telemetry:
  enabled: false
{{- end }}

{{/* NetworkPolicy egress rules shared by several components (networkpolicies.yaml). */}}
{{/* Where components reach PostgreSQL: PgBouncer when enabled, and directly unless PgBouncer is exclusive (so
the secrets can be switched over to PgBouncer one by one without an outage). */}}
{{- define "aggregator.dbEgress" -}}
{{- if .Values.pgbouncer.enabled }}
- to:
    - podSelector:
        matchLabels:
          app.kubernetes.io/name: aggregator-pgbouncer
  ports:
    - protocol: TCP
      port: {{ .Values.pgbouncer.port }}
{{- end }}
{{- if not (and .Values.pgbouncer.enabled .Values.pgbouncer.exclusive) }}
- to:
    {{- range .Values.database.cidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    - protocol: TCP
      port: {{ .Values.database.port }}
{{- end }}
{{- end }}
{{- define "aggregator.apiEgress" -}}
- to:
    {{- range .Values.kubernetesApi.cidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    {{- range .Values.kubernetesApi.ports }}
    - protocol: TCP
      port: {{ . }}
    {{- end }}
{{- end }}
{{/*
Where pipeline code may connect: the sources, minus cloud metadata and minus the API server (user code has no
token, and no route either). `except` must lie inside its `cidr`, so the API server's addresses are excluded
automatically only from 0.0.0.0/0; keep them out of narrower source CIDRs yourself.
*/}}
{{- define "aggregator.sourcesEgress" -}}
- to:
    {{- range .Values.sourcesEgress.cidrs }}
    {{- $except := $.Values.sourcesEgress.except }}
    {{- if eq . "0.0.0.0/0" }}
    {{- $except = concat $except $.Values.kubernetesApi.cidrs | uniq }}
    {{- if and $.Values.pgbouncer.enabled $.Values.pgbouncer.exclusive }}
    {{- $except = concat $except $.Values.database.cidrs | uniq }}
    {{- end }}
    {{- end }}
    - ipBlock:
        cidr: {{ . }}
        {{- with $except }}
        except:
          {{- toYaml . | nindent 10 }}
        {{- end }}
    {{- end }}
{{- end }}
{{- define "aggregator.codeServerEgress" -}}
- to:
    - podSelector:
        matchLabels:
          {{- toYaml .Values.componentLabels.codeServer | nindent 10 }}
  ports:
    - protocol: TCP
      port: {{ .Values.codeServer.port }}
{{- end }}

{{/* Environment of a maintenance container: its own secret's DAGSTER_PG_URL and the instance home. */}}
{{- define "aggregator.maintenanceEnv" -}}
{{- $ := index . 0 -}}
env:
  - name: DAGSTER_HOME
    value: /opt/dagster/dagster_home
  - name: DAGSTER_PG_URL
    valueFrom:
      secretKeyRef:
        name: {{ index . 1 }}
        key: DAGSTER_PG_URL
{{- end }}

{{- define "aggregator.maintenanceMounts" -}}
# DAGSTER_HOME is writable (an emptyDir, the root filesystem is read-only); dagster.yaml is laid over it.
- name: dagster-home
  mountPath: /opt/dagster/dagster_home
- name: instance
  mountPath: /opt/dagster/dagster_home/dagster.yaml
  subPath: dagster.yaml
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end }}

{{- define "aggregator.maintenanceVolumes" -}}
- name: dagster-home
  emptyDir:
    sizeLimit: 256Mi
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
- name: instance
  configMap:
    name: aggregator-maintenance-instance
{{- end }}

{{/* pgbouncer.ini (pgbouncer.yaml); its checksum rolls the pods when it changes. */}}
{{- define "aggregator.pgbouncerIni" -}}
[databases]
{{- range $name, $db := .Values.pgbouncer.databases }}
{{ $name }} = host={{ $.Values.database.host }} port={{ $.Values.database.port }} dbname={{ $name }} pool_mode={{ $db.poolMode }}
{{- end }}

[pgbouncer]
listen_addr = 0.0.0.0
listen_port = {{ $.Values.pgbouncer.port }}
auth_type = scram-sha-256
auth_file = /etc/pgbouncer/secret/userlist.txt
max_client_conn = {{ $.Values.pgbouncer.maxClientConn }}
default_pool_size = {{ $.Values.pgbouncer.defaultPoolSize }}
server_tls_sslmode = require
client_tls_sslmode = require
client_tls_key_file = /etc/pgbouncer/tls/tls.key
client_tls_cert_file = /etc/pgbouncer/tls/tls.crt
ignore_startup_parameters = extra_float_digits,options
admin_users =
unix_socket_dir =
{{- end }}

{{/*
PodDisruptionBudget and HorizontalPodAutoscaler of a stateless Deployment: (list $ name values). maxUnavailable
rather than minAvailable: with one replica, minAvailable 1 would block every node drain.
*/}}
{{- define "aggregator.scaling" -}}
{{- $ := index . 0 }}{{ $name := index . 1 }}{{ $v := index . 2 }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  labels:
    {{- include "aggregator.labels" $ | nindent 4 }}
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: {{ $name }}
{{- if $v.autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $name }}
  labels:
    {{- include "aggregator.labels" $ | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $name }}
  minReplicas: {{ $v.autoscaling.minReplicas }}
  maxReplicas: {{ $v.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $v.autoscaling.targetCPUUtilizationPercentage }}
{{- end }}
{{- end }}
