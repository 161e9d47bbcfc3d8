"""Pyroclast's controller runtime: informers, cache, work queue, controllers, manager.

A controller-runtime-style runtime for async Python that knows nothing about any particular kind. Layout:
:mod:`controller.runtime.client` (REST over kr8s's transport), :mod:`~controller.runtime.reflector` and
:mod:`~controller.runtime.informer` (list/watch into a :mod:`~controller.runtime.cache`),
:mod:`~controller.runtime.workqueue` with :mod:`~controller.runtime.ratelimiter`,
:mod:`~controller.runtime.controller`, :mod:`~controller.runtime.manager` with
:mod:`~controller.runtime.leader`, :mod:`~controller.runtime.metrics`, :mod:`~controller.runtime.tracing`, and
:mod:`~controller.runtime.httpserver` serving :mod:`~controller.runtime.health`.
:mod:`controller.runtime.fakeapi` has an in-memory fake API server for unit tests.

Typical use::

    mgr = await Manager.connect(leader_election=True, leader_election_id="pyroclast")
    mgr.add(Controller(reconcile, for_=TORCHJOBS, owns=[PODS, SERVICES], workers=4))
    await mgr.run()
"""

from controller.runtime.backoff import Backoff as Backoff
from controller.runtime.cache import Cache as Cache
from controller.runtime.cache import label_index as label_index
from controller.runtime.cache import object_key as object_key
from controller.runtime.cache import owner_uid_index as owner_uid_index
from controller.runtime.cache import strip_managed_fields as strip_managed_fields
from controller.runtime.client import Client as Client
from controller.runtime.client import ObjectList as ObjectList
from controller.runtime.client import PatchType as PatchType
from controller.runtime.client import WatchEvent as WatchEvent
from controller.runtime.controller import Controller as Controller
from controller.runtime.controller import Watch as Watch
from controller.runtime.errors import AlreadyExists as AlreadyExists
from controller.runtime.errors import ApiError as ApiError
from controller.runtime.errors import Conflict as Conflict
from controller.runtime.errors import Forbidden as Forbidden
from controller.runtime.errors import Gone as Gone
from controller.runtime.errors import Invalid as Invalid
from controller.runtime.errors import NotFound as NotFound
from controller.runtime.errors import TooManyRequests as TooManyRequests
from controller.runtime.errors import TransportError as TransportError
from controller.runtime.handler import EventHandler as EventHandler
from controller.runtime.handler import controller_reference as controller_reference
from controller.runtime.handler import enqueue_for_object as enqueue_for_object
from controller.runtime.handler import enqueue_for_owner as enqueue_for_owner
from controller.runtime.handler import for_object as for_object
from controller.runtime.handler import for_owner as for_owner
from controller.runtime.handler import from_map_func as from_map_func
from controller.runtime.informer import Informer as Informer
from controller.runtime.informer import InformerEvent as InformerEvent
from controller.runtime.leader import LeaderElectionLost as LeaderElectionLost
from controller.runtime.leader import LeaderElector as LeaderElector
from controller.runtime.manager import CacheSyncTimeout as CacheSyncTimeout
from controller.runtime.manager import Manager as Manager
from controller.runtime.ratelimiter import BucketRateLimiter as BucketRateLimiter
from controller.runtime.ratelimiter import (
    ItemExponentialFailureRateLimiter as ItemExponentialFailureRateLimiter,
)
from controller.runtime.ratelimiter import MaxOfRateLimiter as MaxOfRateLimiter
from controller.runtime.ratelimiter import RateLimiter as RateLimiter
from controller.runtime.ratelimiter import default_controller_rate_limiter as default_controller_rate_limiter
from controller.runtime.ratelimiter import default_item_rate_limiter as default_item_rate_limiter
from controller.runtime.reconcile import Request as Request
from controller.runtime.reconcile import Result as Result
from controller.runtime.reconcile import TerminalError as TerminalError
from controller.runtime.reflector import Reflector as Reflector
from controller.runtime.resource import Resource as Resource
from controller.runtime.tracing import TRACE_CONTEXT_ANNOTATION as TRACE_CONTEXT_ANNOTATION
from controller.runtime.workqueue import QueueShutDown as QueueShutDown
from controller.runtime.workqueue import WorkQueue as WorkQueue
