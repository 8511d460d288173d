"""config.yaml: the settings models, their loading and their cross-key checks."""

from pipeline.config.checks import (
    auth_problems,
    delivery_problems,
    route_problems,
    route_warnings,
    s3_problems,
    semantic_problems,
)
from pipeline.config.load import default_path, literal_secrets, load, load_for_command
from pipeline.config.models import (
                                    AuthSettings,
                                    DeliveryCheckSettings,
                                    Destination,
                                    FolderSettings,
                                    MetricsSettings,
                                    OrderingSettings,
                                    RedoxSettings,
                                    RetrySettings,
                                    Route,
                                    RouteMatch,
                                    Settings,
                                    SourceSettings,
                                    StateSettings,
)

__all__ = ["AuthSettings", "DeliveryCheckSettings", "Destination", "FolderSettings",
           "MetricsSettings", "OrderingSettings", "RedoxSettings", "RetrySettings", "Route",
           "RouteMatch", "Settings", "SourceSettings", "StateSettings", "auth_problems",
           "default_path", "delivery_problems", "literal_secrets", "load", "load_for_command",
           "route_problems", "route_warnings", "s3_problems", "semantic_problems"]
