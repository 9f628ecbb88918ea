{{/* The services this chart deploys, in start-up order. */}}
{{- define "mailmesh.services" -}}
policy queue dns delivery mailbox ingress admin
{{- end -}}

{{- define "mailmesh.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mailmesh.fullname" -}}
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

{{/* Name of one service's objects: <fullname>-<service>. Call with (dict "root" $ "service" "ingress"). */}}
{{- define "mailmesh.componentName" -}}
{{- printf "%s-%s" (include "mailmesh.fullname" .root | trunc 50 | trimSuffix "-") .service -}}
{{- end -}}

{{- define "mailmesh.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mailmesh.labels" -}}
helm.sh/chart: {{ include "mailmesh.chart" . }}
{{ include "mailmesh.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mailmesh
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "mailmesh.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mailmesh.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of one service. Call with (dict "root" $ "service" "ingress"). */}}
{{- define "mailmesh.componentLabels" -}}
{{ include "mailmesh.labels" .root }}
app.kubernetes.io/component: {{ .service }}
{{- end -}}

{{- define "mailmesh.componentSelectorLabels" -}}
{{ include "mailmesh.selectorLabels" .root }}
app.kubernetes.io/component: {{ .service }}
{{- end -}}

{{- define "mailmesh.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mailmesh.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Image of one service. Call with (dict "root" $ "service" "ingress"). */}}
{{- define "mailmesh.image" -}}
{{- $img := .root.Values.image -}}
{{- printf "%s/%s/%s:%s" $img.registry $img.repository .service ($img.tag | default .root.Chart.AppVersion) -}}
{{- end -}}

{{/* Secret holding the chart-made connection strings. */}}
{{- define "mailmesh.secretName" -}}
{{- printf "%s-connections" (include "mailmesh.fullname" .) -}}
{{- end -}}

{{/* The Secret with the admin API keys (admin.existingSecret, or the chart's when admin.apiKeys is set); empty when none. */}}
{{- define "mailmesh.adminKeysSecretName" -}}
{{- if .Values.admin.existingSecret -}}
{{- .Values.admin.existingSecret -}}
{{- else if .Values.admin.apiKeys -}}
{{- printf "%s-admin-keys" (include "mailmesh.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Npgsql connection string without the password (the password is appended by the caller). */}}
{{- define "mailmesh.postgresql.base" -}}
{{- $pg := .Values.postgresql -}}
{{- printf "Host=%s;Port=%d;Database=%s;Username=%s;SSL Mode=%s" $pg.host (int $pg.port) $pg.database $pg.username $pg.sslMode -}}
{{- with $pg.extraOptions }};{{ . }}{{ end -}}
{{- end -}}

{{/* Complete Npgsql connection string from values (chart-made Secret). Passwords are quoted (Npgsql accepts '...'). */}}
{{- define "mailmesh.postgresql.connectionString" -}}
{{- include "mailmesh.postgresql.base" . -}}
{{- with .Values.postgresql.password }};Password='{{ . | replace "'" "''" }}'{{ end -}}
{{- end -}}

{{/* amqp(s)://user[:password]@host:port/vhost with every part URI-escaped (chart-made Secret or password placeholder). */}}
{{- define "mailmesh.rabbitmq.uri" -}}
{{- $r := .root.Values.rabbitmq -}}
{{- $auth := urlquery $r.username -}}
{{- if .password }}{{ $auth = printf "%s:%s" $auth .password }}{{ end -}}
{{- printf "%s://%s@%s:%d/%s" (ternary "amqps" "amqp" $r.tls) $auth $r.host (int $r.port) (urlquery $r.vhost) -}}
{{- end -}}

{{/*
Environment variables carrying the credentials: ConnectionStrings__Spool and ConnectionStrings__RabbitMq, from the
chart-made Secret or from the operator's existing Secrets. With a password-only existing Secret the connection string
is composed from the values with Kubernetes' $(VAR) expansion.
*/}}
{{- define "mailmesh.connectionEnv" -}}
{{- $pg := .Values.postgresql -}}
{{- $r := .Values.rabbitmq -}}
{{- if not $pg.existingSecret }}
- name: ConnectionStrings__Spool
  valueFrom:
    secretKeyRef:
      name: {{ include "mailmesh.secretName" . }}
      key: spool-connection-string
{{- else if $pg.existingSecretConnectionStringKey }}
- name: ConnectionStrings__Spool
  valueFrom:
    secretKeyRef:
      name: {{ $pg.existingSecret }}
      key: {{ $pg.existingSecretConnectionStringKey }}
{{- else }}
- name: MAILMESH_POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $pg.existingSecret }}
      key: {{ $pg.existingSecretPasswordKey }}
- name: ConnectionStrings__Spool
  value: {{ printf "%s;Password=$(MAILMESH_POSTGRES_PASSWORD)" (include "mailmesh.postgresql.base" .) | quote }}
{{- end }}
{{- if not $r.existingSecret }}
- name: ConnectionStrings__RabbitMq
  valueFrom:
    secretKeyRef:
      name: {{ include "mailmesh.secretName" . }}
      key: rabbitmq-uri
{{- else if $r.existingSecretUriKey }}
- name: ConnectionStrings__RabbitMq
  valueFrom:
    secretKeyRef:
      name: {{ $r.existingSecret }}
      key: {{ $r.existingSecretUriKey }}
{{- else }}
- name: MAILMESH_RABBITMQ_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $r.existingSecret }}
      key: {{ $r.existingSecretPasswordKey }}
- name: ConnectionStrings__RabbitMq
  value: {{ include "mailmesh.rabbitmq.uri" (dict "root" . "password" "$(MAILMESH_RABBITMQ_PASSWORD)") | quote }}
{{- end }}
{{- end -}}

{{/* Secret and key KEDA reads the RabbitMQ URI from. */}}
{{- define "mailmesh.keda.uriSecret" -}}
{{- $r := .Values.rabbitmq -}}
{{- if not $r.existingSecret -}}
{{- include "mailmesh.secretName" . }}:rabbitmq-uri
{{- else if $r.existingSecretUriKey -}}
{{- $r.existingSecret }}:{{ $r.existingSecretUriKey }}
{{- else -}}
{{- fail "rabbitmq.existingSecretUriKey is required when KEDA scaling is enabled with rabbitmq.existingSecret: KEDA reads a complete amqp URI from a Secret" -}}
{{- end -}}
{{- end -}}

{{/* Per-service pod settings: `defaults` overlaid with the service's `overrides`. Call with (dict "root" $ "values" $svcValues). Returns YAML. */}}
{{- define "mailmesh.podSettings" -}}
{{- $d := deepCopy .root.Values.defaults -}}
{{- toYaml (mergeOverwrite $d (.values.overrides | default dict)) -}}
{{- end -}}

{{/* Does the service scale automatically (HPA or KEDA)? Call with the service's values. Returns "true" or "". */}}
{{- define "mailmesh.autoscaled" -}}
{{- if or .autoscaling.enabled (and (hasKey . "keda") .keda.enabled) -}}true{{- end -}}
{{- end -}}

{{/*
The RabbitMQ queue a service consumes from, by service ("queue", "delivery"). The only place the chart names a
queue. The names are MassTransit receive endpoints the services declare: a ConsumerDefinition's EndpointName
(services/MailMesh.Queue/MessageReceivedConsumer.cs: queue-delivery-attempted) or the kebab-case endpoint name
formatter (services/Shared/MailMesh.ServiceDefaults/BusExtensions.cs: DeliverMessageConsumer -> deliver-message).
tests/MailMesh.Telemetry.IntegrationTests/ChartQueueNameTests.cs renders the chart and checks that every queue it
names exists on a RabbitMQ virtual host the five services started on.
*/}}
{{- define "mailmesh.rabbitmqQueue" -}}
{{- $queues := dict "queue" "queue-delivery-attempted" "delivery" "deliver-message" -}}
{{- if not (hasKey $queues .) }}{{ fail (printf "no RabbitMQ queue is known for the service %q" .) }}{{ end -}}
{{- index $queues . -}}
{{- end }}

{{/* The Secret with ReturnPath__Secret (returnPath.existingSecret, or the chart's when returnPath.secret is set); empty when none. */}}
{{- define "mailmesh.returnPathSecretName" -}}
{{- if .Values.returnPath.existingSecret -}}
{{- .Values.returnPath.existingSecret -}}
{{- else if .Values.returnPath.secret -}}
{{- printf "%s-return-path" (include "mailmesh.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Base URL of one service's HTTP API inside the cluster, for the admin UI. Call with (dict "root" $ "service" "queue"). */}}
{{- define "mailmesh.serviceUrl" -}}
{{- printf "http://%s:%v" (include "mailmesh.componentName" .) (index .root.Values .service).service.port -}}
{{- end -}}
