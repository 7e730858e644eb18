"""`ticketflow ticket|review|knowledge|erase-customer|keys`: the terminal side of the HTTP
API.

Ticket commands are HTTP calls with the caller's own API key, so an agent's terminal has
exactly the rights of the agent's key and needs no Temporal or database credentials:

    export TICKETFLOW_API_KEY=tfk_…              # `make dev` prints one per role
    ticketflow ticket open --channel email --customer c-1 --subject "无法提现" --description "…"
    ticketflow ticket act ticket-3f2a… respond --message "我们正在处理"
    ticketflow ticket list --status new --priority E --json

Tables for people by default, `--json` for scripts; an error is one line on stderr and a
non-zero exit status.

One module per command group (`tickets`, `reviews`, `knowledge`, `erasure`, `keys`), each
with its `add_*_commands` (the parsers) and `run_*` (the command; returns what to print);
`http` calls the API, `options` turns the API's body models into options, `tables` says
the answers. `workers.cli` wires them into `ticketflow` with the configuration's defaults
(the API's URL, the policy's zone): this package never imports `workers`.
"""
