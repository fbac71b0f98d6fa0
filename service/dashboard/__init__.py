"""Each partner's dashboard at ``/c/<token>``: tokens, the view, the page."""

from service.dashboard.pages import DashboardPages
from service.dashboard.tokens import DashboardLinks, DashboardUrl
from service.dashboard.view import DashboardView, History, build_dashboard

__all__ = [
    "DashboardLinks",
    "DashboardPages",
    "DashboardUrl",
    "DashboardView",
    "History",
    "build_dashboard",
]
