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
* ``a.b`` where ``a`` is a name reads a dict's key inline, as
  :meth:`renderer.env.MailsmithEnvironment.getattr` would first (and ``loop.index0``
  the loop object's attribute, as it would next); anything else goes through the
  sandbox's ``getattr``;
* a column loop unrolled per shape (``{% for %}`` around ``{% if loop.index0 == k
  %}``) runs over item ``k`` only, without Jinja's loop object;
* a URL attribute's value that starts with a safe scheme is escaped to a plain
  ``str`` without the call to :meth:`~renderer.env.MailsmithEnvironment.url`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jinja2 import Template, nodes
from jinja2.compiler import Frame
from jinja2.visitor import NodeTransformer
from markupsafe import escape
from markupsafe._speedups import _escape_inner  # type: ignore[import-not-found,unused-ignore]

from renderer.codegen import GuardedCodeGenerator
from renderer.compile.fused import SHARE_PREFIX, USE_PREFIX
from renderer.urls import FAST_SAFE, UrlKind

COLUMN_FLAGS = "msj_cols"  # the namespace renderer.compile.columns sets and reads
# The attributes of Jinja's loop object, all public and safe (see renderer.env).
LOOP_ATTRIBUTES = frozenset(
    {"index", "index0", "revindex", "revindex0", "first", "last", "length", "depth", "depth0"}
)


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
    """``msj_share_<n>(expr)`` -> ``expr`` (remembered), ``msj_use_<n>()`` -> a local;
    the column flags (``msj_cols.c_x``, see :mod:`renderer.compile.columns`) -> locals.

    The flags live in a namespace so that a ``{% set %}`` inside a loop reaches the
    head; a Python local does the same (a loop is not a scope in Python).
    """

    def __init__(self, flags: frozenset[str]) -> None:
        self.stores: dict[int, str] = {}
        self.flags = flags
        self.nth: dict[int, int] = {}  # loop iterable -> the one item index kept

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

    def visit_Assign(self, node: nodes.Assign) -> nodes.Node | list[nodes.Node]:
        target = node.target
        if isinstance(target, nodes.NSRef) and target.name == COLUMN_FLAGS:
            return nodes.Assign(_flag(target.attr, node.lineno), node.node, lineno=node.lineno)
        if isinstance(target, nodes.Name) and target.name == COLUMN_FLAGS:
            false = nodes.Const(False, lineno=node.lineno)
            return [nodes.Assign(_flag(f, node.lineno), false) for f in sorted(self.flags)]
        result: nodes.Node = self.generic_visit(node)
        return result

    def visit_For(self, node: nodes.For) -> nodes.Node:
        """A column loop unrolled by :mod:`renderer.compile.shapes` (the designer's loop
        around ``{% if loop.index0 == k %}``) iterates over item ``k`` alone."""
        self.generic_visit(node)  # in place
        result = node
        body = result.body
        if len(body) != 1 or not isinstance(body[0], nodes.If) or result.else_:
            return result
        test = body[0]
        index = _index_test(test.test)
        if index is None or test.elif_ or test.else_ or result.test or result.recursive:
            return result
        if any(n.name == "loop" for b in test.body for n in b.find_all(nodes.Name)):
            return result
        result.body = test.body
        self.nth[id(result.iter)] = index
        return result

    def visit_Getattr(self, node: nodes.Getattr) -> nodes.Node:
        if isinstance(node.node, nodes.Name) and node.node.name == COLUMN_FLAGS:
            return _flag(node.attr, node.lineno)
        result: nodes.Node = self.generic_visit(node)
        return result


def _index_test(test: nodes.Node) -> int | None:
    """``k`` when ``test`` is ``loop.index0 == k`` (as shapes.py writes it)."""
    if not isinstance(test, nodes.Compare) or len(test.ops) != 1 or test.ops[0].op != "eq":
        return None
    left, right = test.expr, test.ops[0].expr
    if not (isinstance(left, nodes.Getattr) and isinstance(left.node, nodes.Name)):
        return None
    if left.node.name != "loop" or left.attr != "index0" or not isinstance(right, nodes.Const):
        return None
    return right.value if type(right.value) is int else None


def nth_item(iterable: Any, index: int) -> Any:
    """The items a loop over ``iterable`` keeping only iteration ``index`` runs for."""
    if type(iterable) is list or type(iterable) is tuple:
        return iterable[index : index + 1]
    return [item for number, item in enumerate(iterable) if number == index]


def _flag(name: str, lineno: int) -> nodes.InternalName:
    return _internal_name(f"t_col_{name}", lineno)


def _may_read_eval_context(block: nodes.ScopedEvalContextModifier) -> bool:
    return any(True for _ in block.find_all((nodes.Filter, nodes.Call)))


class FusedCodeGenerator(GuardedCodeGenerator):
    """The code generator of fused layouts (see the module docstring)."""

    url_check = "msj_url"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stores: dict[int, str] = {}
        self._nth: dict[int, int] = {}
        self._in_text = False

    def prepare(self, tree: nodes.Template) -> nodes.Template:
        """``tree`` with shared values resolved; call before :meth:`visit`."""
        flags = frozenset(
            ref.attr for ref in tree.find_all(nodes.NSRef) if ref.name == COLUMN_FLAGS
        )
        shared = _SharedValues(flags)
        result: nodes.Template = shared.visit(tree)
        self._stores = shared.stores
        self._nth = shared.nth
        return result

    def visit(self, node: nodes.Node, *args: Any, **kwargs: Any) -> Any:
        index = self._nth.pop(id(node), None)
        if index is not None:  # around the guard's loop(): it charges the whole length
            self.write("msj_nth(")
            super().visit(node, *args, **kwargs)
            self.write(f", {index})")
            return None
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
        self.write(f"[{key}] if isinstance(")
        self.visit(node.node, frame)
        self.write(f", dict) and {key} in ")
        self.visit(node.node, frame)
        if node.node.name == "loop" and node.attr in LOOP_ATTRIBUTES:
            self.write(" else ")
            self.visit(node.node, frame)
            self.write(f".{node.attr} if type(")
            self.visit(node.node, frame)
            self.write(") is LoopContext")
        self.write(" else environment.getattr(")
        self.visit(node.node, frame)
        self.write(f", {key}))")


def _url_check(env: Any) -> Callable[[Any, UrlKind, str], Any]:
    """``env.url``, as a plain escaped ``str`` for the commonest URLs."""
    url = env.url

    def check(value: Any, kind: UrlKind, after: str) -> Any:
        if type(value) is str and value.startswith(FAST_SAFE):
            return _escape_inner(value)
        return url(value, kind, after)

    return check


def finish_template(template: Template) -> Template:
    """A template compiled by :class:`FusedCodeGenerator`, given what its code calls."""
    namespace = template.root_render_func.__globals__
    namespace["msj_escape"] = escape_str
    namespace["msj_url"] = _url_check(template.environment)
    namespace["msj_nth"] = nth_item
    return template


__all__ = ["FusedCodeGenerator", "escape_str", "finish_template"]
