#!/bin/sh
# The official rabbitmq image's contract, as far as this project uses it: RABBITMQ_DEFAULT_USER and
# RABBITMQ_DEFAULT_PASS become the first user (allowed from other hosts), the server runs in the foreground.
set -eu
if [ "$(id -u)" = 0 ]; then
  chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /etc/rabbitmq
  exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups "$0" "$@"
fi
{
  echo "loopback_users = none"
  echo "default_user = ${RABBITMQ_DEFAULT_USER:-guest}"
  echo "default_pass = ${RABBITMQ_DEFAULT_PASS:-guest}"
} >/etc/rabbitmq/rabbitmq.conf
exec "$@"
