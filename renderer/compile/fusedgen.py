"""The Python code of a fused layout (see :mod:`renderer.compile.fused`).

:class:`FusedCodeGenerator` is :class:`~renderer.codegen.GuardedCodeGenerator`
(loops, sizes and URL attributes guarded as in every template) with what one
pass needs, settled at compile time:

* an ``{% autoescape false %}`` block of the fused source is the text part: its
  output goes to ``context.msj_text`` unescaped, its URL attributes unchecked (the
  text part prints a link's address as written, as the two-pass text template
  does); the autoescape switch happens at run time only when an expression in
  the block could see it (a filter or a call);
* ``msj_share_<n>(expr)`` prints ``expr`` and keeps its value in a local
  (``(t_msj_<n> := expr)``), ``msj_use_<n>()`` prints that local: the expression
  is evaluated once for both parts;
* HTML escaping of an output is :func:`escape_str` (a plain ``str`` for a ``str``
  value: markupsafe's C escape without building a ``Markup``; anything else goes
  through markupsafe's ``escape`` as before);
* ``a.b`` where ``a`` is a name reads a plain dict's key inline, as
  :meth:`renderer.env.MailsmithEnvironment.getattr` would first; anything else
  goes through the sandbox's ``getattr``.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Template, nodes
from jinja2.compiler import Frame
from jinja2.visitor import NodeTransformer
from markupsafe import escape
from markupsafe._speedups import _escape_inner  # type: ignore[import-not-found,unused-ignore]

from renderer.codegen import GuardedCodeGenerator
from renderer.compile.fused import SHARE_PREFIX, USE_PREFIX


def escape_str(value: Any) -> Any:
    """``markupsafe.escape(value)``, as a plain ``str`` when ``value`` is one."""
    if type(value) is str:
        return _escape_inner(value)
    return escape(value)


def _internal_name(name: str, lineno: int) -> nodes.InternalName:
    node = object.__new__(nodes.InternalName)  # as Jinja's parser makes them
    nodes.Node.__init__(node, name, lineno=lineno)
    return node


class _SharedValues(NodeTransformer):
    """``msj_share_<n>(expr)`` -> ``expr`` (remembered), ``msj_use_<n>()`` -> a local."""

    def __init__(self) -> None:
        self.stores: dict[int, str] = {}

    def visit_Call(self, node: nodes.Call) -> nodes.Node:
        callee = node.node
        if isinstance(callee, nodes.Name) and callee.name.startswith(SHARE_PREFIX):
            expr: nodes.Node = self.visit(node.args[0])
            self.stores[id(expr)] = f"t_msj_{callee.name[len(SHARE_PREFIX) :]}"
            return expr
        if isinstance(callee, nodes.Name) and callee.name.startswith(USE_PREFIX):
            return _internal_name(f"t_msj_{callee.name[len(USE_PREFIX) :]}", node.lineno)
        result: nodes.Node = self.generic_visit(node)
        return result


def _may_read_eval_context(block: nodes.ScopedEvalContextModifier) -> bool:
    return any(True for _ in block.find_all((nodes.Filter, nodes.Call)))


class FusedCodeGenerator(GuardedCodeGenerator):
    """The code generator of fused layouts (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stores: dict[int, str] = {}
        self._in_text = False

    def prepare(self, tree: nodes.Template) -> nodes.Template:
        """``tree`` with shared values resolved; call before :meth:`visit`."""
        shared = _SharedValues()
        result: nodes.Template = shared.visit(tree)
        self._stores = shared.stores
        return result

    def visit(self, node: nodes.Node, *args: Any, **kwargs: Any) -> Any:
        name = self._stores.get(id(node))
        if name is None or id(node) in self._url_runs:
            return super().visit(node, *args, **kwargs)
        self.write(f"({name} := ")
        super().visit(node, *args, **kwargs)
        self.write(")")
        return None

    def visit_ScopedEvalContextModifier(
        self, node: nodes.ScopedEvalContextModifier, frame: Frame
    ) -> None:
        runtime = _may_read_eval_context(node)
        if runtime:
            self.writeline("context.eval_ctx.autoescape = False")
        saved = frame.eval_ctx.save()
        frame.eval_ctx.autoescape = False
        buffer, frame.buffer = frame.buffer, "context.msj_text"
        self._in_text = True
        for child in node.body:
            self.visit(child, frame)
        self._in_text = False
        frame.buffer = buffer
        frame.eval_ctx.revert(saved)
        if runtime:
            self.writeline("context.eval_ctx.autoescape = True")

    def visit_Output(self, node: nodes.Output, frame: Frame) -> None:
        if self._in_text:  # text: no URL checks, as in the two-pass text template
            super(GuardedCodeGenerator, self).visit_Output(node, frame)
        else:
            super().visit_Output(node, frame)

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        if frame.eval_ctx.autoescape and not frame.eval_ctx.volatile and finalize.src is None:
            if id(node) not in self._url_outputs:
                self.write("msj_escape(")
            return
        super()._output_child_pre(node, frame, finalize)

    def visit_Getattr(self, node: nodes.Getattr, frame: Frame) -> None:
        if not isinstance(node.node, nodes.Name) or node.ctx != "load":
            super().visit_Getattr(node, frame)
            return
        key = repr(node.attr)
        self.write("(")
        self.visit(node.node, frame)
        self.write(f"[{key}] if type(")
        self.visit(node.node, frame)
        self.write(f") is dict and {key} in ")
        self.visit(node.node, frame)
        self.write(" else environment.getattr(")
        self.visit(node.node, frame)
        self.write(f", {key}))")


def finish_template(template: Template) -> Template:
    """A template compiled by :class:`FusedCodeGenerator`, given what its code calls."""
    template.root_render_func.__globals__["msj_escape"] = escape_str
    return template


__all__ = ["FusedCodeGenerator", "escape_str", "finish_template"]
