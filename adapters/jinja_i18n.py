"""gettext for Jinja2 templates (pages, the dashboard, emails): the catalogs of core.i18n, newstyle.

Here rather than in core/i18n.py because core does not import a web or templating framework.
"""

from __future__ import annotations

from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from core import i18n


def jinja_callables(language: str) -> dict[str, object]:
    """gettext/ngettext/pgettext/_ for a Jinja2 render context: newstyle (autoescaped, %(name)s filled)."""
    plain_gettext, plain_ngettext = i18n.plain_callables(language)

    @pass_context
    def gettext(context: Context, message: str, /, **values: object) -> str:
        text = plain_gettext(message)
        if context.eval_ctx.autoescape:
            text = Markup(text)
        return text % values

    @pass_context
    def ngettext(context: Context, singular: str, plural: str, count: int, /, **values: object) -> str:
        text = plain_ngettext(singular, plural, count)
        if context.eval_ctx.autoescape:
            text = Markup(text)
        return text % {"num": count, "count": count, **values}

    @pass_context
    def pgettext(context: Context, message_context: str, message: str, /, **values: object) -> str:
        # A word whose English is used for two things ("From" a date, "From" a chat): the context tells them apart.
        text = i18n.tr(language).pgettext(message_context, message)
        if context.eval_ctx.autoescape:
            text = Markup(text)
        return text % values

    return {"gettext": gettext, "ngettext": ngettext, "pgettext": pgettext, "_": gettext}
