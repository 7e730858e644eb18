"""Stores and readers: what the API (and a worker at start-up) reads and writes in
PostgreSQL without an activity, and what is built on it. No worker's activity imports
this package; it builds on `activities` (the pool, the outbox), never the other way:
workflows <- activities <- stores <- api <- cli <- workers (tests/test_layers.py).

Here, each for one reason:
- `knowledge`: the agents' knowledge base, written and read by the API (a worker only
  seeds it at start), never by an activity; its starter set is `data/knowledge_starter.json`.
- `suggestions`: ranks the knowledge base against a ticket's words, built in the API
  process; it borrows `activities.classifier.embed`, which is why this package sits above
  `activities`.
- `thread`: the ticket's conversation folded from what `EventStore.thread` reads, for the
  API's thread route.
- `erasure`: a customer's erasure in one PostgreSQL transaction, asked for through the API
  (api/routes/erasure.py), never by a workflow.
- `policy_store`: the policy a task queue's workers run; a worker publishes it at start
  and the API compares it for /readyz, neither through an activity.

Left in `activities`, each for one reason:
- `database`: the pool, the JSON codec and the migrations (with their SQL files) that every
  activity opens; the API and this package use it as a library from the layer below.
- `projection`: the `tickets` read model's fold runs inside `EventStore.append_events`; the
  API only reads its `TicketRow` shape.
- `messages`: the templates (with their TOML files) the delivery relay renders.
- `signing`: the webhook signatures the delivery relay writes (the API and the receiver
  check them).
- `errors`: the non-retryable `ApplicationError` the activities raise.
- `calendars`: the `holidays` adapter a worker process runs when it loads its settings.
"""
