"""When the app is uninstalled or suspended, forget that installation's cached token."""

from gidgethub import sansio

from bot.core.dispatch import Context, Router
from bot.services import Bot

router = Router()


@router.register("installation", action="deleted")
@router.register("installation", action="suspend")
async def forget_installation(event: sansio.Event, ctx: Context[Bot]) -> None:
    """When an installation goes away, drop its cached token so it is never used again."""
    installation_id = event.data["installation"]["id"]
    if ctx.bot.auth is not None:
        ctx.bot.auth.invalidate(installation_id)
