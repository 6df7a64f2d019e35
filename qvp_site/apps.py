from django.apps import AppConfig


class QvpSiteConfig(AppConfig):
    name = "qvp_site"
    verbose_name = "QVP site and time-series machinery"
