#!/usr/bin/env python3
"""Scores one `scripts/quality` run and prints its table (Python 3 standard library only).

  quality_table.py OUT_DIR REALDATA_SCRIPTS UNPACKED

OUT_DIR holds what scripts/quality wrote (the job's and the trivial baselines' outputs);
REALDATA_SCRIPTS is the folder of the real sets' scorers (../shared/realdata); UNPACKED is where
the sets were unpacked (target/realdata). Prints a Markdown table per kind of set, the real sets
first, each with the trivial baseline's row beside the job's, and writes OUT_DIR/quality.json.

Measures added to the scorers' own:
* Nezha, false incidents per hour: incidents matching no fault (score_rca.py's
  unmatched_incidents) over the hours of the stream (first to last sample).
* Nezha, faults sharing an incident: faults absorbed by an incident that opened before them (one
  created before the fault's start, less the scorer's slack, that gains services or merges
  another incident in between that start and the next fault's).
"""
import datetime as dt
import importlib.util
import json
import os
import re
import subprocess
import sys


def epoch(s):
    s = s.strip()
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    if "." in s[19:]:
        head, rest = s[:19], s[19:]
        frac = rest[1:].split("+")[0].split("-")[0]
        tz = rest[1 + len(frac):]
        s = head + "." + (frac + "000000")[:6] + tz
    return dt.datetime.fromisoformat(s).timestamp()


def jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def windows_scores(scripts, unpacked, set_name, flag, path):
    """score_windows.py on one set: the WINDOWS line's figures."""
    d = f"{unpacked}/anomaly/{set_name}"
    out = subprocess.run(
        [sys.executable, f"{scripts}/score_windows.py", "--labels", f"{d}/labels.jsonl",
         "--services", f"{d}/services.jsonl", flag, path],
        capture_output=True, text=True, check=True).stdout
    line = [l for l in out.splitlines() if l.startswith("WINDOWS")][-1]
    figures = dict(kv.split("=", 1) for kv in line.split()[1:])
    figures.pop("set", None)
    counts = re.search(r"precision=[0-9.]+% \((\d+)/(\d+) opens\)", out)
    figures["alarms"] = f"{counts.group(1)}/{counts.group(2)}" if counts else "0/0"
    return figures


def rca_scores(scripts, truth, incidents, filt=None, extra=()):
    args = [sys.executable, f"{scripts}/score_rca.py", "--truth", truth, "--incidents", incidents]
    if filt:
        args += ["--filter", filt]
    out = subprocess.run(args + list(extra), capture_output=True, text=True, check=True).stdout
    last = [l for l in out.splitlines() if l.startswith("RCA ")][-1]
    figures = dict(kv.split("=", 1) for kv in last.split()[1:])
    m = re.search(r"detected=(\d+)/(\d+).*incidents=(\d+) unmatched_incidents=(\d+)", out)
    figures.update(detected=f"{m.group(1)}/{m.group(2)}", incidents=int(m.group(3)),
                   unmatched=int(m.group(4)))
    return figures


def stream_hours(path):
    first = last = None
    with open(path) as f:
        for line in f:
            t = json.loads(line)["timestamp"]
            first = first or t
            last = t
    return (epoch(last) - epoch(first)) / 3600.0


def shared_faults(truth, incidents, slack=60):
    """Faults absorbed by an incident that opened before them: an incident created before a
    fault's start (less the scorer's slack) that gains services (or merges another in) between
    that start and the next fault's."""
    created = {}
    for v in incidents:
        created.setdefault(v["incident_id"], epoch(v["created_at"]))
    starts = sorted(epoch(t["fault_start"]) for t in truth)
    shared = 0
    for k, f in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else float("inf")
        for v in incidents:
            change = v.get("change", "")
            grows = change.startswith("services added") or change.startswith("merged ")
            at = epoch(v.get("updated_at", v["created_at"]))
            if grows and created[v["incident_id"]] < f - slack and f <= at < end:
                shared += 1
                break
    return shared


def main():
    out, scripts, unpacked = sys.argv[1:4]
    result = {"anomaly_sets": [], "nezha": [], "petshop": [], "loadgen": []}
    # 5-minute anomaly sets: the trivial baseline, the champion's anomalies, the incidents.
    for s in ("asd", "jumpstarter"):
        for run, flag, path in (("trivial baseline (baseline_windows.py)", "--anomalies", f"{out}/bw_{s}.jsonl"),
                                ("incidentflow anomalies (champion)", "--anomalies", f"{out}/anomalies_{s}.jsonl"),
                                ("incidentflow incidents (pages)", "--incidents", f"{out}/incidents_{s}.jsonl")):
            if os.path.exists(path):
                result["anomaly_sets"].append(dict(set=s, run=run, **windows_scores(scripts, unpacked, s, flag, path)))
    # Nezha: root cause, false incidents per hour, faults sharing an incident.
    truth_path = f"{unpacked}/rca/nezha/ground_truth.jsonl"
    truth = jsonl(truth_path)
    streams = {"online-boutique": "online-boutique_2022-08-22", "train-ticket": "train-ticket_2023-01-29"}
    for system, stream in streams.items():
        hours = stream_hours(f"{unpacked}/rca/nezha/streams/{stream}.jsonl")
        cases = [t for t in truth if t["system"] == system]
        for run, path in (("trivial baseline (baseline_rca.py detect)", f"{out}/rca_baseline_{system}.jsonl"),
                          ("incidentflow", f"{out}/incidents_{stream}.jsonl")):
            if not os.path.exists(path):
                continue
            figures = rca_scores(scripts, truth_path, path, filt=system)
            incidents = jsonl(path)
            figures.update(system=system, run=run, hours=round(hours, 1),
                           false_per_hour=round(figures["unmatched"] / hours, 2),
                           shared=shared_faults(cases, incidents))
            result["nezha"].append(figures)
    # PetShop: ranking with the fault time given (scorer's --slack 900 --horizon 900).
    for run, path in (("trivial baseline (baseline_rca.py oracle)", f"{out}/petshop_oracle.jsonl"),
                      ("incidentflow", f"{out}/incidents_petshop.jsonl")):
        if os.path.exists(path):
            figures = rca_scores(scripts, f"{unpacked}/rca/petshop/ground_truth.jsonl", path,
                                 extra=("--slack", "900", "--horizon", "900"))
            result["petshop"].append(dict(run=run, **figures))
    # The loadgen: incidentflow eval's summaries.
    for name in sorted(os.listdir(out)):
        path = f"{out}/{name}/eval.json"
        if os.path.exists(path):
            with open(path) as f:
                e = json.load(f)
            champion = next((d for d in e.get("detectors") or [] if d.get("champion")), {})
            result["loadgen"].append(dict(scenario=name, incidents=e.get("incidents") or {}, champion=champion))

    with open(f"{out}/quality.json", "w") as f:
        json.dump(result, f, indent=1)

    print("\n**5-minute server metrics** (`score_windows.py`, default alarm gap)\n")
    print("| set | run | timely recall | recall | precision (true/all alarms) | F1 | NAB standard | false alarms / service-day |")
    print("|---|---|---|---|---|---|---|---|")
    for r in result["anomaly_sets"]:
        print(f"| {r['set']} | {r['run']} | {r['timely_recall']} | {r['recall']} | {r['precision']} ({r['alarms']}) "
              f"| {r['f1']} | {r['nab_standard']} | {r['fa_per_day']} |")
    print("\n**Nezha, 1-minute microservice streams with injected faults** (`score_rca.py`)\n")
    print("| system | run | root cause top-1 | top-3 | faults with an incident | delay p50 | incidents | false incidents / hour | faults sharing an incident |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in result["nezha"]:
        print(f"| {r['system']} | {r['run']} | {r['top1']} | {r['top3']} | {r['detected']} | {r['delay_p50']} "
              f"| {r['incidents']} ({r['unmatched']} match no fault, {r['hours']} h) | {r['false_per_hour']} | {r['shared']} |")
    if result["petshop"]:
        print("\n**PetShop, root cause with the fault time given** (`score_rca.py --slack 900 --horizon 900`)\n")
        print("| run | top-1 | top-3 | cases with an incident |")
        print("|---|---|---|---|")
        for r in result["petshop"]:
            print(f"| {r['run']} | {r['top1']} | {r['top3']} | {r['detected']} |")
    if result["loadgen"]:
        print("\n**The load generator** (`incidentflow eval`)\n")
        print("| scenario | champion | episodes | episode precision | episode recall | incidents | incident precision | incident recall | top-1 | top-3 |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        pct = lambda x: "-" if x is None else f"{100 * x:.1f}%"
        for r in result["loadgen"]:
            inc, ep = r["incidents"], r["champion"]
            print(f"| {r['scenario']} | {ep.get('detector', '-')} | {ep.get('episodes', '-')} | {pct(ep.get('precision'))} "
                  f"| {pct(ep.get('recall'))} | {inc.get('total', '-')} | {pct(inc.get('precision'))} | {pct(inc.get('recall'))} "
                  f"| {pct(inc.get('root_cause_top1'))} | {pct(inc.get('root_cause_top3'))} |")


if __name__ == "__main__":
    main()
