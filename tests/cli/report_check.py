#!/usr/bin/env python3
"""The report writer end to end, on the CPU: `moekit bench --report` on a tiny preset and on a
tiny checkpoint (`--model`), and `moekit report --merge` of the two. Checks that every file is
there, results.json parses and has the schema, results.csv parses, and every SVG is well-formed
XML with a title, both axes, axis labels and a legend.

Usage: report_check.py path/to/moekit   (standard library only)
"""
import csv
import json
import os
import struct
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

SVG = "{http://www.w3.org/2000/svg}"
failures = []


def fail(message):
    failures.append(message)
    print("FAIL: " + message)


def run(moekit, *args):
    proc = subprocess.run([moekit, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        fail("moekit %s exited %d: %s" % (" ".join(args), proc.returncode, proc.stderr.strip()[-500:]))
    return proc


def check_svg(path):
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        return fail("%s is not well-formed XML: %s" % (path, e))
    name = os.path.basename(path)
    if root.tag != SVG + "svg":
        return fail("%s: root element is %s, not svg" % (name, root.tag))
    title = root.find(SVG + "title")
    if title is None or not (title.text or "").strip():
        fail("%s: no <title>" % name)
    groups = {g.get("id"): g for g in root.iter(SVG + "g")}
    for axis in ("x-axis", "y-axis", "legend"):
        if axis not in groups:
            fail("%s: no <g id=\"%s\">" % (name, axis))
    if "y-axis" in groups and len(list(groups["y-axis"].iter(SVG + "text"))) < 2:
        fail("%s: the y axis has fewer than 2 tick labels" % name)
    if "x-axis" in groups and not list(groups["x-axis"].iter(SVG + "text")):
        fail("%s: the x axis has no labels" % name)
    if "legend" in groups and len(list(groups["legend"].iter(SVG + "text"))) < 2:
        fail("%s: the legend has no entries" % name)
    labels = [t for t in root.iter(SVG + "text") if t.get("class") == "axis-label" and (t.text or "").strip()]
    if len(labels) != 2:
        fail("%s: expected 2 axis labels, found %d" % (name, len(labels)))
    units = " ".join(t.text for t in labels)
    if "(" not in units:
        fail("%s: axis labels carry no unit: %s" % (name, units))


def check_report(folder, scopes, min_rows):
    for f in ("results.json", "results.csv", "results.md"):
        if not os.path.isfile(os.path.join(folder, f)):
            fail("%s/%s missing" % (folder, f))
    try:
        with open(os.path.join(folder, "results.json")) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        return fail("%s/results.json does not parse: %s" % (folder, e))
    if doc.get("schema") != "moekit-report/1":
        fail("%s/results.json: schema is %r" % (folder, doc.get("schema")))
    rows = doc.get("rows", [])
    if len(rows) < min_rows:
        fail("%s: %d rows, expected at least %d" % (folder, len(rows), min_rows))
    for r in rows:
        for key in ("impl", "backend", "mode", "scope", "tokens", "status"):
            if key not in r:
                fail("%s: a row lacks %r: %s" % (folder, key, r))
                break
    with open(os.path.join(folder, "results.csv"), newline="") as f:
        table = list(csv.DictReader(f))
    if len(table) != len(rows):
        fail("%s: results.csv has %d rows, results.json %d" % (folder, len(table), len(rows)))
    with open(os.path.join(folder, "results.md")) as f:
        md = f.read()
    if "| series |" not in md or "](latency_" not in md:
        fail("%s/results.md lacks the tables or the chart links" % folder)
    for scope in scopes:
        if not any(r.get("scope") == scope and r.get("status") == "ok" for r in rows):
            fail("%s: no timed row of scope %s" % (folder, scope))
        for chart in ("latency", "speedup", "memory"):
            path = os.path.join(folder, "%s_%s.svg" % (chart, scope))
            if not os.path.isfile(path):
                fail("%s missing" % path)
            else:
                check_svg(path)
    return doc


def write_safetensors(path, tensors):
    """tensors: {name: (shape, [float values])}, written as F32."""
    header, blobs, offset = {}, [], 0
    for name, (shape, values) in tensors.items():
        blob = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def tiny_solar_checkpoint(folder):
    """Two MoE layers of a solar_open model: H=32, I=16, E=8, K=2, one shared expert."""
    H, I, E = 32, 16, 8
    config = {"model_type": "solar_open", "hidden_size": H, "moe_intermediate_size": I, "n_routed_experts": E,
              "num_experts_per_tok": 2, "n_shared_experts": 1, "num_hidden_layers": 2, "n_group": 1,
              "topk_group": 1, "norm_topk_prob": True, "routed_scaling_factor": 1.0, "hidden_act": "silu",
              "torch_dtype": "float32", "architectures": ["SolarOpenForCausalLM"]}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f)
    state = [12345]

    def rand(n, scale):
        out = []
        for _ in range(n):
            state[0] = (state[0] * 1103515245 + 12345) % (1 << 31)
            out.append((state[0] / float(1 << 30) - 1.0) * scale)
        return out

    tensors = {}
    for layer in range(2):
        p = "model.layers.%d.mlp." % layer
        for e in range(E):
            tensors[p + "experts.%d.gate_proj.weight" % e] = ((I, H), rand(I * H, 0.2))
            tensors[p + "experts.%d.up_proj.weight" % e] = ((I, H), rand(I * H, 0.2))
            tensors[p + "experts.%d.down_proj.weight" % e] = ((H, I), rand(H * I, 0.2))
        tensors[p + "gate.weight"] = ((E, H), rand(E * H, 0.2))
        tensors[p + "gate.e_score_correction_bias"] = ((E,), [0.0] * E)
        for proj, shape in (("gate_proj", (I, H)), ("up_proj", (I, H)), ("down_proj", (H, I))):
            tensors[p + "shared_experts.%s.weight" % proj] = (shape, rand(shape[0] * shape[1], 0.2))
    write_safetensors(os.path.join(folder, "model.safetensors"), tensors)


def main():
    moekit = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        quick = ["--warmup", "1", "--repeat", "2", "--quiet"]
        preset = os.path.join(tmp, "preset")
        run(moekit, "bench", "--device", "cpu", "--preset", "solar-open-100b", "--hidden", "64", "--intermediate",
            "32", "--experts", "8", "--batch", "1,2", "--seq", "1,3", "--layers", "2", *quick, "--report", preset)
        doc = check_report(preset, ["experts", "block"], 2 * 4 * 3)
        if doc:
            shapes = sorted({(r["batch"], r["seq"], r["tokens"]) for r in doc["rows"]})
            if shapes != [(1, 1, 1), (1, 3, 3), (2, 1, 2), (2, 3, 6)]:
                fail("batch x seq points are %s" % shapes)
            if any(r.get("layers") != 2 for r in doc["rows"]):
                fail("rows do not say layers = 2")

        ckpt = os.path.join(tmp, "ckpt")
        os.mkdir(ckpt)
        tiny_solar_checkpoint(ckpt)
        model = os.path.join(tmp, "model")
        run(moekit, "bench", "--device", "cpu", "--model", ckpt, "--layer", "1", "--tokens", "1,5", *quick,
            "--report", model)
        check_report(model, ["experts", "block"], 2 * 2 * 3)
        stack = os.path.join(tmp, "stack")
        run(moekit, "bench", "--device", "cpu", "--model", ckpt, "--layers", "2", "--tokens", "2", "--scope", "block",
            *quick, "--report", stack)
        check_report(stack, ["block"], 3)

        merged = os.path.join(tmp, "merged")
        run(moekit, "report", "--merge", os.path.join(preset, "results.json"), os.path.join(model, "results.json"),
            "--out", merged, "--title", "merged")
        doc = check_report(merged, ["experts", "block"], 2 * 4 * 3 + 2 * 2 * 3)
        if doc and len(doc.get("sources", [])) != 2:
            fail("the merged report has %d sources, expected 2" % len(doc.get("sources", [])))

        bad = os.path.join(tmp, "bad.json")
        with open(bad, "w") as f:
            f.write("{\"rows\": []}")
        proc = subprocess.run([moekit, "report", "--merge", bad, "--out", os.path.join(tmp, "x")],
                              capture_output=True, text=True)
        lines = proc.stderr.strip().splitlines()
        if proc.returncode != 2 or len(lines) != 1 or not lines[0].startswith("moekit: "):
            fail("report --merge of a non-report: exit %d, stderr %r" % (proc.returncode, proc.stderr))

    print("report_check: %s" % ("ok" if not failures else "%d failures" % len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
