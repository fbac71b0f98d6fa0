"""The web app: health now; the SMS webhook (issue [C]) and calendar feeds (issue [D]) next."""

from service.web.app import create_app

__all__ = ["create_app"]
