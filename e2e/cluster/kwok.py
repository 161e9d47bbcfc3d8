"""kwok's identity on the rig, and the one thing it may not do that a kubelet never does.

A kubelet finishes a pod's deletion with the pod's UID as a precondition, so it can only ever remove the pod
it ran. kwok (v0.8) deletes by name from a queue that may be seconds old: when a controller reuses the name
(every gang restart does), kwok's late delete of the old pod removes the new one, which no real node would
do. The rig therefore runs kwok as its own user and refuses, by admission policy, any delete of that user's
that is not finishing a deletion already under way (the pod has a deletionTimestamp).
"""

from __future__ import annotations

from typing import Any, Final

USER: Final = "rig:kwok"
GROUPS: Final = ("system:masters",)
"""kwok manages nodes, leases and pods of every namespace; its rights are not what the rig tests."""

POLICY_NAME: Final = "rig-kwok-finishes-deletions-only"
POLICY_PATH: Final = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies"
BINDING_PATH: Final = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings"
REFUSAL: Final = (
    "kwok may only finish the deletion of a pod already being deleted: a kubelet deletes with the pod's "
    "UID as precondition, never a pod that reuses the name"
)

POLICY: Final[dict[str, Any]] = {
    "apiVersion": "admissionregistration.k8s.io/v1",
    "kind": "ValidatingAdmissionPolicy",
    "metadata": {"name": POLICY_NAME},
    "spec": {
        "failurePolicy": "Fail",
        "matchConstraints": {
            "resourceRules": [
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["DELETE"], "resources": ["pods"]}
            ]
        },
        "matchConditions": [{"name": "kwok", "expression": f"request.userInfo.username == '{USER}'"}],
        "validations": [{"expression": "has(oldObject.metadata.deletionTimestamp)", "message": REFUSAL}],
    },
}

BINDING: Final[dict[str, Any]] = {
    "apiVersion": "admissionregistration.k8s.io/v1",
    "kind": "ValidatingAdmissionPolicyBinding",
    "metadata": {"name": POLICY_NAME},
    "spec": {"policyName": POLICY_NAME, "validationActions": ["Deny"]},
}
