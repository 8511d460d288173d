"""config.yaml: the settings models, their loading and their cross-key checks."""

from pipeline.config.checks import (
    auth_problems,
    clear_text_problems,
    delivery_problems,
    filesystem_problems,
    folder_problems,
    route_problems,
    route_warnings,
    s3_problems,
    semantic_problems,
)
from pipeline.config.load import default_path, examine, literal_secrets, load, load_for_command
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
           "clear_text_problems", "default_path", "delivery_problems", "examine",
           "filesystem_problems", "folder_problems", "literal_secrets", "load", "load_for_command",
           "route_problems", "route_warnings", "s3_problems", "semantic_problems"]
