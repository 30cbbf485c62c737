"""mkdocs hook: one API reference page per public module, and the notebooks as pages.

The page list is computed from the package itself (every submodule whose dotted path
has no ``_``-prefixed part, and each module's ``__all__`` or public functions and
classes), so a new module or name appears in the reference without editing anything.
``tests/test_docs.py`` imports :func:`reference_pages` to check the coverage.
"""

from __future__ import annotations

import importlib
import inspect
import pathlib
import pkgutil

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = "jaxopt_lab"


def public_modules() -> list[str]:
    """Dotted names of the package and its public submodules, sorted.

    Returns:
      A list of module names.
    """
    pkg = importlib.import_module(PACKAGE)
    names = [PACKAGE]
    for info in pkgutil.walk_packages(pkg.__path__, PACKAGE + "."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def module_members(name: str) -> tuple[list[str], list[str]]:
    """Public names of a module, split into those it defines and those it re-exports.

    Args:
      name: a dotted module name.

    Returns:
      ``(own, reexported)``: names documented on this module's page, and names
      defined elsewhere (linked to their home page). Submodules and plain data are
      left out of both.
    """
    mod = importlib.import_module(name)
    if hasattr(mod, "__all__"):
        names = list(mod.__all__)
    else:
        names = [n for n, obj in vars(mod).items() if not n.startswith("_")
                 and (inspect.isfunction(obj) or inspect.isclass(obj))
                 and getattr(obj, "__module__", None) == name]
    own, other = [], []
    for n in names:
        obj = getattr(mod, n)
        if inspect.ismodule(obj) or not callable(obj):
            continue
        (own if getattr(obj, "__module__", None) == name else other).append(n)
    return own, other


def _home(obj) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def page_markdown(name: str, public: set[str]) -> str:
    """The markdown of one reference page.

    Args:
      name: a dotted module name.
      public: all public module names (a re-exported name links to its home page
        only when that page exists).

    Returns:
      The page text: the module docstring, its own public names rendered by
      mkdocstrings, and a table of re-exported names linking to their home pages.
    """
    mod = importlib.import_module(name)
    own, other = module_members(name)
    lines = [f"# `{name}`", "", f"::: {name}", "    options:", "      show_root_heading: false",
             "      show_root_toc_entry: false"]
    if own:
        lines += ["      members:"] + [f"        - {n}" for n in own]
    else:
        lines += ["      members: false"]
    linked = [(n, getattr(mod, n)) for n in other]
    linked = [(n, o) for n, o in linked if getattr(o, "__module__", "") in public]
    if linked:
        lines += ["", "## Re-exported names", "", "| Name | Defined in |", "|---|---|"]
        for n, obj in linked:
            lines.append(f"| [`{n}`][{_home(obj)}] | `{obj.__module__}` |")
    subs = sorted(m for m in public if m.rsplit(".", 1)[0] == name and m != name)
    if subs:
        lines += ["", "## Submodules", ""]
        lines += [f"- [`{m}`]({m.rsplit('.', 1)[-1]}/index.md)" if _is_pkg(m)
                  else f"- [`{m}`]({m.rsplit('.', 1)[-1]}.md)" for m in subs]
    return "\n".join(lines) + "\n"


def _is_pkg(name: str) -> bool:
    return hasattr(importlib.import_module(name), "__path__")


def reference_pages() -> list[tuple[str, str]]:
    """``(module name, page path under docs/)`` for every public module.

    Returns:
      A list; packages get ``reference/<path>/index.md``, modules ``reference/<path>.md``.
    """
    out = []
    for name in public_modules():
        parts = name.split(".")
        path = "/".join(["reference", *parts, "index.md"]) if _is_pkg(name) else \
            "/".join(["reference", *parts[:-1], parts[-1] + ".md"])
        out.append((name, path))
    return out


def _nav(pages: list[tuple[str, str]]) -> list:
    return [{name: path} for name, path in pages]


NOTEBOOK_DIR = ROOT / "notebooks"


def notebooks() -> list[pathlib.Path]:
    """The numbered jupytext notebooks, in order.

    Returns:
      A sorted list of paths.
    """
    return sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))


def _title(path: pathlib.Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("# # "):
            return line[4:].strip()
    return path.stem


# --- mkdocs hook events -------------------------------------------------------------------

def on_config(config):
    """Append the notebooks and the generated reference to the navigation.

    Args:
      config: the mkdocs config.

    Returns:
      The config.
    """
    nav = config["nav"]
    nav.append({"Notebooks": ["notebooks.md"]
                + [{_title(p): f"notebooks/{p.name}"} for p in notebooks()]})
    nav.append({"API reference": ["reference/index.md", *_nav(reference_pages())]})
    return config


def _on_files(files, config):
    from mkdocs.structure.files import File

    public = set(public_modules())
    for name, path in reference_pages():
        files.append(File.generated(config, path, content=page_markdown(name, public)))
    rows = ["# API reference", "",
            "One page per public module, generated from the docstrings. Everything in "
            "`jaxopt_lab.__all__` is also importable from the top level "
            "(`import jaxopt_lab as jaxopt; jaxopt.LBFGS`).", "",
            "| Module | Summary |", "|---|---|"]
    for name, path in reference_pages():
        doc = (importlib.import_module(name).__doc__ or "").strip().splitlines()
        summary = doc[0] if doc else ""
        rows.append(f"| [`{name}`]({path.removeprefix('reference/')}) | {summary} |")
    files.append(File.generated(config, "reference/index.md", content="\n".join(rows) + "\n"))
    for nb in notebooks():
        files.append(File(f"notebooks/{nb.name}", str(ROOT), config["site_dir"],
                          config["use_directory_urls"]))
    return files


def on_page_markdown(markdown, page, config, files):
    """Fill the notebook table of ``notebooks.md`` from the files in ``notebooks/``.

    Args:
      markdown: the page source.
      page: the page.
      config: the mkdocs config.
      files: all files of the site.

    Returns:
      The (possibly) edited markdown.
    """
    if page.file.src_uri != "notebooks.md":
        return markdown
    rows = ["| Notebook | Question |", "|---|---|"]
    for nb in notebooks():
        number, _, question = _title(nb).partition(" · ")
        rows.append(f"| [{number.strip()}: `{nb.name}`](notebooks/{nb.name}) | {question or _title(nb)} |")
    return markdown.replace("<!-- notebook-table -->", "\n".join(rows))


try:  # run before mkdocs-jupyter wraps notebook files
    from mkdocs.plugins import event_priority

    on_files = event_priority(100)(_on_files)
except ImportError:  # imported by the tests without mkdocs
    on_files = _on_files
