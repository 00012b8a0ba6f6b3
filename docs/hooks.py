"""MkDocs hooks: the reference pages written from the code at build time, and the notebooks rendered with outputs.

- `<!-- generated: cli -->` in a page becomes every `lsbm-sim` command with its arguments and options, read from
  the typer app, so the page cannot miss one.
- `<!-- generated: scenario -->` becomes every scenario field with its type and default, read from the pydantic
  schema, each model's docstring above its fields.
- `<!-- generated: benchmark results -->` becomes benchmarks/RESULTS.md, included rather than retyped.
- The notebooks in notebooks/ are executed small (LSBM_NOTEBOOK_SMALL=1, as the tests run them) into a folder
  outside the docs and rendered by mkdocs-jupyter with their outputs. A notebook whose real data (its
  `lsbm.needs_shared_data` metadata) is absent is rendered without outputs, with a first cell that says why, so
  the site builds on a clean checkout. LSBM_DOCS_EXECUTE=0 renders them all without executing (a quick build).
"""

from __future__ import annotations

import os
import re
import types
import typing
from pathlib import Path

import nbformat
from pydantic import BaseModel

try:
    from mkdocs.plugins import event_priority
    from mkdocs.structure.files import File
except ImportError:  # tests/test_docs_site.py imports the page writers where only the test extra is installed

    def event_priority(priority):
        return lambda event: event

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SHARED_DATA = ROOT.parent / "shared" / "data"  # the notebooks read ../../shared/data from notebooks/
RENDERED = ROOT / ".cache" / "docs-notebooks"


# ----------------------------------------------------------------------------------------------- command line


def cli_reference() -> str:
    """Every command of `lsbm-sim` (groups' subcommands too): its help, usage, arguments and options."""
    import typer.main

    from lsbm_sim.cli import app

    root = typer.main.get_command(app)
    parts: list[str] = []
    for path, command in _commands(root, ["lsbm-sim"]):
        ctx = command.context_class(command, info_name=" ".join(path))
        parts.append(f"### `{' '.join(path)}`\n")
        if command.help:
            parts.append(_plain(command.help) + "\n")
        usage = re.sub(r"[{\[](\w+)[}\]]", lambda m: m.group(1).upper() if m.group(1) != "OPTIONS" else m.group(0), command.get_usage(ctx))
        parts.append(f"```text\n{usage}\n```\n")
        rows = [_param_row(param) for param in command.params if not getattr(param, "hidden", False)]
        if rows:
            parts.append("| argument or option | default | what it does |\n| --- | --- | --- |")
            parts.extend(rows)
            parts.append("")
    return "\n".join(parts)


def _commands(group, path: list[str]):
    ctx = group.context_class(group, info_name=path[-1])
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if hasattr(command, "list_commands"):  # a group (typer may carry its own copy of click's classes)
            yield from _commands(command, [*path, name])
        else:
            yield [*path, name], command


def _param_row(param) -> str:
    if param.param_type_name == "argument":
        name = f"`{param.name.upper()}`" + ("" if param.required else " (optional)")
    else:
        name = ", ".join(f"`{opt}`" for opt in [*param.opts, *param.secondary_opts])
    default = "" if param.required or param.default in (None, (), []) else f"`{param.default}`"
    if getattr(param, "is_flag", False) and param.default is False:
        default = ""
    return f"| {name} | {default} | {_plain(getattr(param, 'help', None) or '')} |"


def _plain(text: str) -> str:
    """One line of help, safe inside a Markdown table."""
    return " ".join(text.split()).replace("|", "\\|")


# ------------------------------------------------------------------------------------------------ scenario


def scenario_reference() -> str:
    """Every field of the scenario schema, model by model from `Scenario` down: type, default, and the model's
    docstring."""
    from lsbm_sim.scenario import Scenario

    parts: list[str] = []
    for path, model in _models(Scenario, ""):
        parts.append(f"### `{path or 'scenario'}` ({model.__name__})\n")
        doc = (model.__doc__ or "").strip()
        if doc and doc != (BaseModel.__doc__ or "").strip():
            parts.append(" ".join(doc.split()) + "\n")
        parts.append("| field | type | default |\n| --- | --- | --- |")
        for name, field in model.model_fields.items():
            default = "required" if field.is_required() else f"`{_default(field)}`"
            parts.append(f"| `{_join(path, name)}` | {_type(field.annotation)} | {default} |")
        parts.append("")
    return "\n".join(parts)


def scenario_field_paths() -> list[str]:
    """Every field's dotted path as `scenario_reference` writes it (for the test that the page has them all)."""
    from lsbm_sim.scenario import Scenario

    return [_join(path, name) for path, model in _models(Scenario, "") for name in model.model_fields]


def _models(model: type[BaseModel], path: str, seen: set | None = None):
    seen = set() if seen is None else seen
    if (path, model) in seen:
        return
    seen.add((path, model))
    yield path, model
    for name, field in model.model_fields.items():
        for inner, is_list in _inner_models(field.annotation):
            yield from _models(inner, _join(path, name) + ("[]" if is_list else ""), seen)


def _inner_models(annotation, is_list: bool = False):
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation, is_list
        return
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        yield from _inner_models(typing.get_args(annotation)[0], is_list)
    elif origin in (list, tuple):
        for arg in typing.get_args(annotation):
            yield from _inner_models(arg, True)
    elif origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            yield from _inner_models(arg, is_list)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _type(annotation) -> str:
    # "or", not "|": an escaped pipe inside a code span shows its backslash in a Markdown table
    return f"`{_type_text(annotation).replace(' | ', ' or ')}`"


def _type_text(annotation) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_text(args[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(dict.fromkeys(_type_text(a) for a in args))
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(_type_text(a) for a in args)}]" if args else name
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _default(field) -> str:
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "{...}"
    if value is None:
        return "null"
    return repr(value) if value == "" else str(value)


# ----------------------------------------------------------------------------------------- benchmark figures


def benchmark_results() -> str:
    """benchmarks/RESULTS.md as a section of a page: its headings one level down (the page has its own title),
    and a wrapped line that happens to start with '#' (a hashtag) kept as text, as GitHub shows it."""
    lines, fenced = [], False
    for line in (ROOT / "benchmarks" / "RESULTS.md").read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,5} ", line):
            line = "#" + line
        elif not fenced and re.match(r"#[^#\s]", line):
            line = "\\" + line
        lines.append(line)
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- notebooks


def render_notebooks(folder: Path, execute: bool = True) -> list[Path]:
    """Each notebook executed small into `folder` (or, without its real data or with `execute` off, copied
    with a first cell saying it is shown without outputs and why)."""
    from nbclient import NotebookClient

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sorted(NOTEBOOKS.glob("*.ipynb")):
        notebook = nbformat.read(source, as_version=4)
        missing = [n for n in notebook.metadata.get("lsbm", {}).get("needs_shared_data", []) if not (SHARED_DATA / n).exists()]
        if missing:
            note = f"Shown without outputs: this notebook needs real data not present where the site was built ({', '.join(missing)} under ../shared/data)."
        elif not execute:
            note = "Shown without outputs (the site was built with LSBM_DOCS_EXECUTE=0)."
        else:
            note = "Executed when this site was built, at the small size the tests use (LSBM_NOTEBOOK_SMALL=1)."
            os.environ["LSBM_NOTEBOOK_SMALL"] = "1"  # the kernel inherits it
            NotebookClient(notebook, timeout=600, kernel_name="python3",
                           resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()  # fmt: skip
        notebook.cells.insert(1, nbformat.v4.new_markdown_cell(f"> *{note}*"))
        target = folder / source.name
        nbformat.write(notebook, target)
        written.append(target)
    return written


# --------------------------------------------------------------------------------------------- MkDocs events

GENERATED = {
    "<!-- generated: cli -->": cli_reference,
    "<!-- generated: scenario -->": scenario_reference,
    "<!-- generated: benchmark results -->": benchmark_results,
}


@event_priority(100)  # before mkdocs-jupyter's on_files, which picks the notebooks up
def on_files(files, config):
    execute = os.environ.get("LSBM_DOCS_EXECUTE", "1") != "0"
    for path in render_notebooks(RENDERED / "notebooks", execute=execute):
        files.append(File(f"notebooks/{path.name}", str(RENDERED), config["site_dir"], config["use_directory_urls"]))
    return files


def on_page_markdown(markdown, page, config, files):
    for marker, write in GENERATED.items():
        if marker in markdown:
            markdown = markdown.replace(marker, write())
    return markdown
