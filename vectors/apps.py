from django.apps import AppConfig


class VectorsConfig(AppConfig):
    name = "vectors"
    verbose_name = "Feature vectors"
    default_auto_field = "django.db.models.BigAutoField"

    # A build's record says what it read: added by the build, never changed by the site.
    app_role_privileges = {"vectors_featurebuild": "INSERT"}

    def ready(self) -> None:
        from trading import reruns

        # The runs build_patterns made can be rerun through trading's doors (its API) too;
        # a dotted path, so that nothing of the pipeline loads before a rerun asks for it.
        reruns.register("vectors.patterns", "vectors.patterns.rerun")
