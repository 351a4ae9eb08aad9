"""What the bot does when GitHub tells it something: one module per concern, each with a ``router``.

``ROUTERS`` is composed by :class:`bot.dispatch.Dispatcher`.
"""

from handlers import check_actions, commands, environments, installations, prebuilds

ROUTERS = [environments.router, commands.router, check_actions.router, installations.router, prebuilds.router]
