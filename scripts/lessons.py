#!/usr/bin/env python3
"""The lessons' machinery: each lesson is written as lessons/NN-name.ts (jupytext percent format, easy to
diff and review) and paired with lessons/NN-name.ipynb (what learners open in JupyterLab).

  python3 scripts/lessons.py sync             regenerate every .ipynb from its .ts (no outputs)
  python3 scripts/lessons.py run [--render]   execute every lesson headless with the tslab kernel;
                                              --render writes docs/lessons/NN-name.md with the real outputs
  python3 scripts/lessons.py check            .ipynb and docs/lessons/*.md are current with the .ts sources

Connection settings reach the kernel through the environment (SLUICE_BOOTSTRAP_SERVERS, SLUICE_REGISTRY_URL, ...).
A failing cell (including a lesson's final check cell) makes `run` exit non-zero with the cell and its error.
"""
import argparse
import pathlib
import re
import sys
import time

import jupytext
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import MarkdownExporter

ROOT = pathlib.Path(__file__).resolve().parent.parent
LESSONS = ROOT / "lessons"
DOCS = ROOT / "docs" / "lessons"
KERNEL = {"name": "tslab", "display_name": "TypeScript", "language": "typescript"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def sources():
    return sorted(LESSONS.glob("[0-9][0-9]-*.ts"))


def notebook_of(src):
    nb = jupytext.read(src, fmt="ts:percent")
    nb.metadata = {"kernelspec": KERNEL, "language_info": {"name": "typescript"}}
    for i, cell in enumerate(nb.cells):
        cell.metadata = {}
        cell.id = f"cell-{i}"  # stable ids: a re-sync changes a notebook only where its source changed
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def cells_of(nb):
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def sync(_args):
    for src in sources():
        nbformat.write(notebook_of(src), src.with_suffix(".ipynb"))
        print(f"wrote {src.with_suffix('.ipynb').relative_to(ROOT)}")


def render(nb, src):
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if "text" in out:
                out["text"] = ANSI.sub("", out["text"])
    # Pictures (a lesson's plots) are written next to the Markdown, in docs/lessons/<lesson>_files/.
    files_dir = f"{src.stem}_files"
    body, resources = MarkdownExporter().from_notebook_node(nb, resources={"output_files_dir": files_dir, "unique_key": src.stem})
    header = f"<!-- Rendered from lessons/{src.name} by scripts/lessons.py run --render: real outputs of a run. -->\n\n"
    (DOCS / f"{src.stem}.md").write_text(header + body)
    outputs = resources.get("outputs", {})
    if outputs:
        (DOCS / files_dir).mkdir(exist_ok=True)
        for old in (DOCS / files_dir).iterdir():
            old.unlink()
        for name, data in outputs.items():
            (DOCS / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def run(args):
    failed = []
    for src in sources():
        if args.only and not any(src.stem.startswith(o) for o in args.only):
            continue
        nb = notebook_of(src)
        started = time.time()
        client = NotebookClient(nb, timeout=args.cell_timeout, kernel_name=KERNEL["name"], resources={"metadata": {"path": str(LESSONS)}})
        try:
            client.execute()
        except CellExecutionError as e:
            failed.append(src.name)
            print(f"FAIL {src.name}: {ANSI.sub('', str(e))}", file=sys.stderr)
            continue
        seconds = time.time() - started
        print(f"ok   {src.name} ({seconds:.1f} s)")
        if seconds > args.max_seconds:
            failed.append(src.name)
            print(f"FAIL {src.name}: took {seconds:.0f} s, more than the {args.max_seconds} s a lesson may take", file=sys.stderr)
        if args.render:
            DOCS.mkdir(parents=True, exist_ok=True)
            render(nb, src)
    if failed:
        print(f"{len(failed)} lesson(s) failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


def code_blocks(markdown):
    return [b.strip() for b in re.findall(r"```typescript\n(.*?)```", markdown, re.S)]


def check(_args):
    problems = []
    for src in sources():
        nb = notebook_of(src)
        ipynb = src.with_suffix(".ipynb")
        if not ipynb.exists() or cells_of(nbformat.read(ipynb, 4)) != cells_of(nb):
            problems.append(f"{ipynb.relative_to(ROOT)} is not current with {src.name}: run python3 scripts/lessons.py sync")
        doc = DOCS / f"{src.stem}.md"
        want = [s for t, s in cells_of(nb) if t == "code"]
        if not doc.exists() or code_blocks(doc.read_text()) != want:
            problems.append(f"{doc.relative_to(ROOT)} is not current with {src.name}: run npm run lessons:render")
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"{len(sources())} lessons current")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("sync").set_defaults(fn=sync)
    r = sub.add_parser("run")
    r.add_argument("only", nargs="*", help="lesson number prefixes, e.g. 00 02")
    r.add_argument("--render", action="store_true")
    r.add_argument("--cell-timeout", type=int, default=60)
    r.add_argument("--max-seconds", type=int, default=60)
    r.set_defaults(fn=run)
    sub.add_parser("check").set_defaults(fn=check)
    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
