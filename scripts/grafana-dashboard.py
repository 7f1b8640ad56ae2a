#!/usr/bin/env python3
# Writes docs/grafana-dashboard.json (run from the repository root:
# python3 scripts/grafana-dashboard.py > docs/grafana-dashboard.json). The panels use etcd's
# metric names and rusd's own (docs/metrics.md); every query was checked against a
# Prometheus scraping rusd.
import json
DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
panels = []
pid = [0]
y = [0]

def row(title):
    pid[0] += 1
    panels.append({"type": "row", "title": title, "id": pid[0], "collapsed": False,
                   "gridPos": {"h": 1, "w": 24, "x": 0, "y": y[0]}, "panels": []})
    y[0] += 1

x = [0]
def panel(title, targets, unit="short", kind="timeseries", w=8, h=7, desc=""):
    pid[0] += 1
    if x[0] + w > 24:
        x[0] = 0
        y[0] += h
    p = {"type": kind, "title": title, "id": pid[0], "datasource": DS,
         "gridPos": {"h": h, "w": w, "x": x[0], "y": y[0]},
         "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
         "options": {"legend": {"displayMode": "list", "placement": "bottom"}} if kind == "timeseries"
                    else {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                          "colorMode": "value", "graphMode": "none"},
         "targets": [{"datasource": DS, "expr": e, "legendFormat": l, "refId": chr(65 + i)}
                     for i, (e, l) in enumerate(targets)]}
    if desc:
        p["description"] = desc
    panels.append(p)
    x[0] += w

def endrow(h=7):
    x[0] = 0
    y[0] += h

I = 'instance=~"$instance"'
row("etcd (the names etcd's own dashboards use)")
panel("Has leader", [(f'etcd_server_has_leader{{{I}}}', "{{instance}}")], kind="stat", w=4, h=5)
panel("Leader changes (1h)", [(f'increase(etcd_server_leader_changes_seen_total{{{I}}}[1h])', "{{instance}}")], kind="stat", w=4, h=5)
panel("DB size", [(f'etcd_mvcc_db_total_size_in_bytes{{{I}}}', "{{instance}}")], unit="bytes", kind="stat", w=4, h=5)
panel("Keys", [(f'etcd_debugging_mvcc_keys_total{{{I}}}', "{{instance}}")], kind="stat", w=4, h=5)
panel("Quota", [(f'etcd_server_quota_backend_bytes{{{I}}}', "{{instance}}")], unit="bytes", kind="stat", w=4, h=5)
panel("Version", [(f'etcd_server_version{{{I}}}', "{{server_version}}")], kind="stat", w=4, h=5)
endrow(5)
panel("gRPC requests/s", [
    (f'sum by (instance) (rate(grpc_server_started_total{{{I},grpc_type="unary"}}[1m]))', "started {{instance}}"),
    (f'sum by (instance) (rate(grpc_server_handled_total{{{I},grpc_type="unary",grpc_code!="OK"}}[1m]))', "failed {{instance}}")], unit="reqps")
panel("gRPC requests/s by method", [
    (f'sum by (grpc_method) (rate(grpc_server_handled_total{{{I}}}[1m]))', "{{grpc_method}}")], unit="reqps")
panel("gRPC p99 latency by method", [
    (f'histogram_quantile(0.99, sum by (grpc_method, le) (rate(grpc_server_handling_seconds_bucket{{{I},grpc_type="unary"}}[5m])))', "{{grpc_method}}")], unit="s", w=8)
endrow()
panel("gRPC errors/s by code", [
    (f'sum by (grpc_method, grpc_code) (rate(grpc_server_handled_total{{{I},grpc_code!="OK"}}[1m]))', "{{grpc_method}} {{grpc_code}}")], unit="reqps", w=24)
endrow()
panel("Active streams", [
    (f'sum(grpc_server_started_total{{{I},grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"}}) - sum(grpc_server_handled_total{{{I},grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"}})', "watch"),
    (f'sum(grpc_server_started_total{{{I},grpc_service="etcdserverpb.Lease",grpc_type="bidi_stream"}}) - sum(grpc_server_handled_total{{{I},grpc_service="etcdserverpb.Lease",grpc_type="bidi_stream"}})', "lease keep-alive")])
panel("Client traffic", [
    (f'rate(etcd_network_client_grpc_received_bytes_total{{{I}}}[1m])', "in {{instance}}"),
    (f'rate(etcd_network_client_grpc_sent_bytes_total{{{I}}}[1m])', "out {{instance}}")], unit="Bps")
panel("MVCC operations/s", [
    (f'rate(etcd_mvcc_put_total{{{I}}}[1m])', "put"), (f'rate(etcd_mvcc_delete_total{{{I}}}[1m])', "delete"),
    (f'rate(etcd_mvcc_range_total{{{I}}}[1m])', "range"), (f'rate(etcd_mvcc_txn_total{{{I}}}[1m])', "txn")], unit="ops")
endrow()
panel("Raft proposals", [
    (f'rate(etcd_server_proposals_committed_total{{{I}}}[1m])', "committed/s"),
    (f'rate(etcd_server_proposals_applied_total{{{I}}}[1m])', "applied/s"),
    (f'rate(etcd_server_proposals_failed_total{{{I}}}[1m])', "failed/s"),
    (f'etcd_server_proposals_pending{{{I}}}', "pending")])
panel("Disk sync duration (p99)", [
    (f'histogram_quantile(0.99, sum by (instance, le) (rate(etcd_disk_wal_fsync_duration_seconds_bucket{{{I}}}[5m])))', "WAL fsync {{instance}}"),
    (f'histogram_quantile(0.99, sum by (instance, le) (rate(etcd_disk_backend_commit_duration_seconds_bucket{{{I}}}[5m])))', "backend commit {{instance}}")], unit="s")
panel("DB size", [
    (f'etcd_mvcc_db_total_size_in_bytes{{{I}}}', "total {{instance}}"),
    (f'etcd_mvcc_db_total_size_in_use_in_bytes{{{I}}}', "in use {{instance}}"),
    (f'etcd_server_quota_backend_bytes{{{I}}}', "quota {{instance}}")], unit="bytes")
endrow()

row("rusd components (supervisor, frontend, raftd, stored)")
panel("Component up", [(f'rusd_component_up{{{I}}}', "{{component}}")], kind="stat", w=8, h=5,
      desc="1 while the component's process runs; 0 while the supervisor restarts it.")
panel("Restarts (1h)", [(f'increase(rusd_component_restarts_total{{{I}}}[1h])', "{{component}}")], kind="stat", w=8, h=5,
      desc="Restarts by the supervisor: crashes, kills, hangs (heartbeat stalled 5 s).")
panel("Heartbeat age", [(f'rusd_component_heartbeat_age_seconds{{{I}}}', "{{component}}")], unit="s", kind="stat", w=8, h=5)
endrow(5)
panel("Restarts", [(f'increase(rusd_component_restarts_total{{{I}}}[5m])', "{{component}}")])
panel("CPU per process", [(f'rate(process_cpu_seconds_total{{{I}}}[1m])', "{{component}}")], unit="percentunit")
panel("Memory per process (RSS)", [(f'process_resident_memory_bytes{{{I}}}', "{{component}}")], unit="bytes")
endrow()
panel("Heartbeat age", [(f'rusd_component_heartbeat_age_seconds{{{I}}}', "{{component}}")], unit="s")
panel("Open file descriptors", [(f'process_open_fds{{{I}}}', "{{component}}")])
panel("Raft term", [(f'rusd_raft_term{{{I}}}', "{{instance}}")])
endrow()

row("rusd rings (shared-memory queues between the processes)")
panel("Ring depth", [(f'rusd_ring_depth_bytes{{{I}}}', "{{ring}}")], unit="bytes",
      desc="Bytes published and not consumed yet: a ring that stays deep has a slow consumer.")
panel("Ring throughput", [(f'rate(rusd_ring_written_bytes_total{{{I}}}[1m])', "{{ring}}")], unit="Bps")
panel("Messages per wake-up", [(f'rate(rusd_ring_messages_total{{{I}}}[1m]) / rate(rusd_ring_wakeups_total{{{I}}}[1m])', "{{ring}}")],
      desc="How many messages each futex wake-up carried: high is good batching.")
endrow()
panel("Messages/s", [(f'rate(rusd_ring_messages_total{{{I}}}[1m])', "{{ring}}")], unit="ops")
panel("Producer waits/s (ring full)", [
    (f'rate(rusd_ring_producer_waits_total{{{I}}}[1m])', "wait {{ring}}"),
    (f'rate(rusd_ring_full_total{{{I}}}[1m])', "refused {{ring}}")],
    desc="A producer found its ring full: the consumer is the bottleneck.")
panel("Ring fill", [(f'rusd_ring_depth_bytes{{{I}}} / rusd_ring_capacity_bytes{{{I}}}', "{{ring}}")], unit="percentunit")
endrow()

dash = {
    "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource",
                  "pluginId": "prometheus", "pluginName": "Prometheus"}],
    "__requires": [{"type": "grafana", "id": "grafana", "name": "Grafana", "version": "9.0.0"},
                   {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"}],
    "title": "rusd (etcd-compatible)",
    "uid": "rusd-overview",
    "description": "etcd's standard panels on rusd's etcd-named metrics, plus rusd's per-process and per-ring panels (docs/metrics.md).",
    "tags": ["rusd", "etcd"],
    "timezone": "browser",
    "schemaVersion": 36,
    "version": 1,
    "editable": True,
    "refresh": "10s",
    "time": {"from": "now-1h", "to": "now"},
    "templating": {"list": [{
        "name": "instance", "label": "instance", "type": "query", "datasource": DS,
        "query": {"query": "label_values(etcd_server_has_leader, instance)", "refId": "instance"},
        "definition": "label_values(etcd_server_has_leader, instance)",
        "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]}}]},
    "annotations": {"list": []},
    "panels": panels,
}
print(json.dumps(dash, indent=2))
