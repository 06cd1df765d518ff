"""Our own strict schemas for the custom resources the chart renders.

kubernetes-validate ships schemas for built-in kinds only. These JSON schemas are written
for this project from the fields KEDA and the Prometheus Operator document for these kinds
(only the fields a chart would set); every object lists its properties and accepts no
others, so a misspelt field fails the check instead of being dropped by the API server.
"""

STR = {"type": "string"}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
STR_MAP = {"type": "object", "additionalProperties": STR}


def obj(properties, required=()):
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


def array_of(item):
    return {"type": "array", "items": item}


METADATA = {"type": "object"}  # checked by the API server, not by the CRD

SCALED_OBJECT = obj(
    {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": METADATA,
        "spec": obj(
            {
                "scaleTargetRef": obj(
                    {"apiVersion": STR, "kind": STR, "name": STR, "envSourceContainerName": STR},
                    required=["name"],
                ),
                "pollingInterval": INT,
                "cooldownPeriod": INT,
                "initialCooldownPeriod": INT,
                "idleReplicaCount": INT,
                "minReplicaCount": INT,
                "maxReplicaCount": INT,
                "fallback": obj({"failureThreshold": INT, "replicas": INT, "behavior": STR}, required=["failureThreshold", "replicas"]),
                "advanced": {"type": "object"},
                "triggers": array_of(
                    obj(
                        {
                            "type": STR,
                            "name": STR,
                            "metadata": STR_MAP,
                            "useCachedMetrics": BOOL,
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "authenticationRef": obj(
                                {"name": STR, "kind": {"enum": ["TriggerAuthentication", "ClusterTriggerAuthentication"]}},
                                required=["name"],
                            ),
                        },
                        required=["type", "metadata"],
                    )
                ),
            },
            required=["scaleTargetRef", "triggers"],
        ),
    },
    required=["apiVersion", "kind", "metadata", "spec"],
)

SECRET_REF = obj({"parameter": STR, "name": STR, "key": STR}, required=["parameter", "name", "key"])

TRIGGER_AUTHENTICATION = obj(
    {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "TriggerAuthentication"},
        "metadata": METADATA,
        "spec": obj(
            {
                "secretTargetRef": array_of(SECRET_REF),
                "env": array_of(obj({"parameter": STR, "name": STR, "containerName": STR}, required=["parameter", "name"])),
                "podIdentity": obj({"provider": STR, "identityId": STR, "roleArn": STR, "identityOwner": STR}, required=["provider"]),
                "hashiCorpVault": obj(
                    {
                        "address": STR,
                        "authentication": {"enum": ["token", "kubernetes"]},
                        "role": STR,
                        "mount": STR,
                        "namespace": STR,
                        "credential": obj({"token": STR, "serviceAccount": STR, "serviceAccountName": STR}),
                        "secrets": array_of(
                            obj({"parameter": STR, "key": STR, "path": STR, "type": STR, "pkiData": {"type": "object"}}, required=["parameter", "key", "path"])
                        ),
                    },
                    required=["address", "authentication", "secrets"],
                ),
            }
        ),
    },
    required=["apiVersion", "kind", "metadata", "spec"],
)

SERVICE_MONITOR = obj(
    {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": METADATA,
        "spec": obj(
            {
                "selector": obj(
                    {
                        "matchLabels": STR_MAP,
                        "matchExpressions": array_of(
                            obj({"key": STR, "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]}, "values": array_of(STR)}, required=["key", "operator"])
                        ),
                    }
                ),
                "namespaceSelector": obj({"any": BOOL, "matchNames": array_of(STR)}),
                "jobLabel": STR,
                "targetLabels": array_of(STR),
                "podTargetLabels": array_of(STR),
                "endpoints": array_of(
                    obj(
                        {
                            "port": STR,
                            "targetPort": {"type": ["string", "integer"]},
                            "path": STR,
                            "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                            "interval": STR,
                            "scrapeTimeout": STR,
                            "honorLabels": BOOL,
                            "relabelings": array_of({"type": "object"}),
                            "metricRelabelings": array_of({"type": "object"}),
                        }
                    )
                ),
            },
            required=["selector"],
        ),
    },
    required=["apiVersion", "kind", "metadata", "spec"],
)

SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): SCALED_OBJECT,
    ("keda.sh/v1alpha1", "TriggerAuthentication"): TRIGGER_AUTHENTICATION,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR,
}
