"""The HTTP API's routes, one module per resource, each an `APIRouter`: `api.app` builds
the application and includes them. What every route depends on (services, access rules,
path checks) is in `api.deps`; the bodies are in `api.schemas`; failures become answers in
`api.errors`, never in a route."""
