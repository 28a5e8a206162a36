# gate serve, the approval and audit server, in a container.
#
#   docker build -t gate .
#   docker run -d --name gate \
#     -v "$PWD/server-policy.yaml:/etc/gate/server-policy.yaml:ro" \
#     -v gate-state:/var/lib/gate \
#     -p 127.0.0.1:8700:8700 gate
#   docker exec gate gate serve token issue --policy /etc/gate/server-policy.yaml --db /var/lib/gate/server.db --principal alice
#
# Inside the container the server listens on 0.0.0.0:8700 so that the port can be published; it
# warns at start that there is no TLS. Tokens travel as bearer headers: publish the port only to
# a TLS-terminating proxy (or to 127.0.0.1, as above), never straight to a network.

# The newest stable Rust (gate needs 1.89 or later; see Cargo.toml).
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin gate

FROM debian:bookworm-slim
# A user of its own; the state directory (database, signing key, audit log) is its alone.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/gate --shell /usr/sbin/nologin gate \
    && install -d -m 0700 -o gate -g gate /var/lib/gate
COPY --from=build /src/target/release/gate /usr/local/bin/gate
ENV XDG_STATE_HOME=/var/lib XDG_CONFIG_HOME=/var/lib/gate/config NO_COLOR=1
VOLUME /var/lib/gate
USER gate
EXPOSE 8700
STOPSIGNAL SIGTERM
ENTRYPOINT ["gate"]
CMD ["serve", "--listen", "0.0.0.0:8700", "--policy", "/etc/gate/server-policy.yaml", "--db", "/var/lib/gate/server.db", "--audit-log", "/var/lib/gate/server-audit.jsonl"]
