"""The compile-once pipeline, as stages run in this order per template.

1. :mod:`~renderer.content` (outside this package): templates and blocks
   loaded and assembled into one token stream.
2. :mod:`.optimize`: literal segment calls inlined, campaign constants folded.
3. :mod:`.structure`: each token's MJML context; the if/for tree.
4. :mod:`.shapes`: per column layout (shape), branches chosen and loops unrolled.
5. :mod:`.placeholders`: Jinja replaced by markers MJML and the inliner pass through.
6. :mod:`.mjml`: MJML to HTML.
7. :mod:`.inline`: CSS inlined into ``style`` attributes; :mod:`.links`: the
   campaign's tracked links decorated (when it has ``tracking:``).
8. :mod:`.ascii`: the template's own non-ASCII characters as references.
9. :mod:`.columns`: column-width CSS kept only where its column renders.
10. :mod:`.placeholders` again: the Jinja put back; :mod:`.text` the plain-text part.
11. :mod:`.template`: both compiled as Jinja templates; :mod:`.fused` interleaves
    them into one template that renders both parts in one pass, compiled by
    :mod:`.fusedgen` (the two templates stay: the fallback and the error reporter).
"""

from renderer.compile.template import CompiledTemplate as CompiledTemplate
from renderer.compile.template import compile_template as compile_template

__all__ = ["CompiledTemplate", "compile_template"]
