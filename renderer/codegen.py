"""The Python code a template compiles to, with mailsmith's guards built in.

Jinja lets an environment change the code its templates compile to through
``code_generator_class``. :class:`GuardedCodeGenerator` adds, where the template
has them and nowhere else:

* every ``{% for %}`` iterates through the render's guard (one tick per
  iteration, see :mod:`renderer.limits`);
* every ``~`` and every filter that joins, pads or repeats checks the size of the
  string it built;
* in an HTML template, every output expression that starts the value of a URL
  attribute (``href="{{ link }}"``) is checked against the scheme allow-list of
  :mod:`renderer.urls`, with the literal text that follows it.

The generated code calls ``environment.guard`` (a
:class:`~renderer.limits.RenderGuard`) and ``environment.url``: both are set by
:class:`renderer.env.MailsmithEnvironment`, the only environment using this class.
"""

from __future__ import annotations

from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame

from renderer.urls import scheme_part, url_kind

# Filters whose result can be much longer than their input.
GROWING_FILTERS = frozenset(
    {"center", "format", "indent", "join", "list", "replace", "sum", "urlize", "wordwrap"}
)


class GuardedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with the guards of the module docstring.

    Jinja allows no custom node types, so the nodes to wrap are remembered by
    identity and :meth:`visit` writes the wrapping around them.
    """

    url_check = "environment.url"  # what checks a single-expression URL (a subclass may inline)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loop_iters: set[int] = set()
        self._url_runs: dict[int, tuple[list[nodes.Expr], str, str]] = {}  # until written
        self._url_outputs: set[int] = set()  # written as URL checks, not escaped again

    def visit(self, node: nodes.Node, *args: Any, **kwargs: Any) -> Any:
        key = id(node)
        if key in self._loop_iters:
            self.write("environment.guard.loop(")
            super().visit(node, *args, **kwargs)
            self.write(")")
            return None
        run = self._url_runs.pop(key, None)
        if run is not None:
            parts, kind, after = run
            if len(parts) == 1:
                self.write(f"{self.url_check}(")
                self.visit(parts[0], *args, **kwargs)
            else:
                self.write("environment.url_parts((")
                for part in parts:
                    self.visit(part, *args, **kwargs)
                    self.write(", ")
                self.write(")")
            self.write(f", {kind!r}, {after!r})")
            return None
        return super().visit(node, *args, **kwargs)

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        if id(node) not in self._url_outputs:  # a URL check returns escaped markup
            super()._output_child_pre(node, frame, finalize)

    def _output_child_post(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        if id(node) not in self._url_outputs:
            super()._output_child_post(node, frame, finalize)

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        self._loop_iters.add(id(node.iter))
        super().visit_For(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.guard.sized(")
        super().visit_Concat(node, frame)
        self.write(")")

    def visit_Filter(self, node: nodes.Filter, frame: Frame) -> None:
        if node.name not in GROWING_FILTERS:
            super().visit_Filter(node, frame)
            return
        self.write("environment.guard.sized(")
        super().visit_Filter(node, frame)
        self.write(")")

    def visit_Output(self, node: nodes.Output, frame: Frame) -> None:
        if self.environment.autoescape is True:
            node.nodes = self._guard_urls(node.nodes)
        super().visit_Output(node, frame)

    def _guard_urls(self, children: list[nodes.Expr]) -> list[nodes.Expr]:
        """An Output node's children, each run of expressions that starts a URL
        attribute's value replaced by its first, which :meth:`visit` writes as a
        check of the whole run (with the literal text after it)."""
        result: list[nodes.Expr] = []
        index = 0
        while index < len(children):
            child = children[index]
            result.append(child)
            index += 1
            kind = url_kind(child.data) if isinstance(child, nodes.TemplateData) else None
            end = index
            while (
                kind and end < len(children) and not isinstance(children[end], nodes.TemplateData)
            ):
                end += 1
            if end == index:
                continue
            following: Any = children[end] if end < len(children) else None
            after = scheme_part(following.data) if following is not None else ""
            run = children[index:end]
            self._url_runs[id(run[0])] = (run, str(kind), after)
            self._url_outputs.add(id(run[0]))
            result.append(run[0])
            index = end
        return result


__all__ = ["GuardedCodeGenerator"]
