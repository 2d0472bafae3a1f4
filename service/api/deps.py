from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.errors import NotReady
from service.state import ServiceState


def get_state(request: Request) -> ServiceState:
    state: ServiceState | None = getattr(request.app.state, "service", None)
    if state is None:
        raise NotReady("the models and the gallery are still loading")
    return state


StateDep = Annotated[ServiceState, Depends(get_state)]
