"""Pyroclast's controller runtime: informers, cache, work queue, controllers, manager.

A controller-runtime-style runtime for async Python that knows nothing about any particular
kind. Layout: :mod:`controller.client` (REST over kr8s's transport), :mod:`~controller.reflector`
and :mod:`~controller.informer` (list/watch into a :mod:`~controller.cache`),
:mod:`~controller.workqueue` with :mod:`~controller.ratelimiter`, :mod:`~controller.controller`,
:mod:`~controller.manager` with :mod:`~controller.leader`, :mod:`~controller.metrics`,
:mod:`~controller.tracing`, and :mod:`~controller.httpserver` serving :mod:`~controller.health`.
:mod:`controller.testing` has an in-memory fake API server for unit tests.

Typical use::

    mgr = await Manager.connect(leader_election=True, leader_election_id="pyroclast")
    mgr.add(Controller(reconcile, for_=TORCHJOBS, owns=[PODS, SERVICES], workers=4))
    await mgr.run()
"""

from controller.backoff import Backoff as Backoff
from controller.cache import Cache as Cache
from controller.cache import label_index as label_index
from controller.cache import object_key as object_key
from controller.cache import owner_uid_index as owner_uid_index
from controller.cache import strip_managed_fields as strip_managed_fields
from controller.client import Client as Client
from controller.client import ObjectList as ObjectList
from controller.client import PatchType as PatchType
from controller.client import WatchEvent as WatchEvent
from controller.controller import Controller as Controller
from controller.controller import Watch as Watch
from controller.errors import AlreadyExists as AlreadyExists
from controller.errors import ApiError as ApiError
from controller.errors import Conflict as Conflict
from controller.errors import Forbidden as Forbidden
from controller.errors import Gone as Gone
from controller.errors import Invalid as Invalid
from controller.errors import NotFound as NotFound
from controller.errors import TooManyRequests as TooManyRequests
from controller.errors import TransportError as TransportError
from controller.handler import controller_reference as controller_reference
from controller.handler import enqueue_for_object as enqueue_for_object
from controller.handler import enqueue_for_owner as enqueue_for_owner
from controller.informer import Informer as Informer
from controller.informer import InformerEvent as InformerEvent
from controller.leader import LeaderElectionLost as LeaderElectionLost
from controller.leader import LeaderElector as LeaderElector
from controller.manager import CacheSyncTimeout as CacheSyncTimeout
from controller.manager import Manager as Manager
from controller.ratelimiter import BucketRateLimiter as BucketRateLimiter
from controller.ratelimiter import ItemExponentialFailureRateLimiter as ItemExponentialFailureRateLimiter
from controller.ratelimiter import MaxOfRateLimiter as MaxOfRateLimiter
from controller.ratelimiter import RateLimiter as RateLimiter
from controller.ratelimiter import default_controller_rate_limiter as default_controller_rate_limiter
from controller.ratelimiter import default_item_rate_limiter as default_item_rate_limiter
from controller.reflector import Reflector as Reflector
from controller.request import Request as Request
from controller.request import Result as Result
from controller.request import TerminalError as TerminalError
from controller.resource import Resource as Resource
from controller.tracing import TRACE_CONTEXT_ANNOTATION as TRACE_CONTEXT_ANNOTATION
from controller.workqueue import QueueShutDown as QueueShutDown
from controller.workqueue import WorkQueue as WorkQueue
