#!/bin/bash
# docker-compose's Kafka (apache/kafka image): every listener authenticates. Clients (inside the
# compose network on kafka:19092, on the host on 127.0.0.1:9092) and the broker itself use
# SASL/SCRAM-SHA-256; the KRaft controller listener SASL/PLAIN with one static user. ACLs
# (StandardAuthorizer, nothing allowed by default) are written by the kafka-setup service
# (`ionflux principals sync`). The broker's and the admin's SCRAM credentials go into the metadata
# when the data folder is formatted. Secrets come from /run/secrets (deploy/compose/init-secrets.sh).
set -euo pipefail
secret() { tr -d '\n' <"/run/secrets/$1"; }
broker=$(secret kafka-broker)
controller=$(secret kafka-controller)
admin=$(secret kafka-admin)
conf=/tmp/server.properties
umask 077
cat >"$conf" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@kafka:9093
listeners=INTERNAL://:19092,EXTERNAL://:9092,CONTROLLER://:9093
advertised.listeners=INTERNAL://kafka:19092,EXTERNAL://localhost:9092
listener.security.protocol.map=INTERNAL:SASL_PLAINTEXT,EXTERNAL:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT
inter.broker.listener.name=INTERNAL
controller.listener.names=CONTROLLER
sasl.enabled.mechanisms=SCRAM-SHA-256
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-256
listener.name.internal.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="ionflux-broker" password="$broker";
listener.name.external.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="controller" password="$controller" user_controller="$controller";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:ionflux-broker;User:controller;User:ionflux-admin
log.dirs=/var/lib/kafka/data
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
default.replication.factor=1
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
message.max.bytes=4194304
PROPS
# The healthcheck's client settings (as the admin).
printf 'security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-256\nsasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="ionflux-admin" password="%s";\n' "$admin" >/tmp/admin.properties
if [ ! -f /var/lib/kafka/data/meta.properties ]; then
  # The passwords reach the storage tool (kafka-storage.sh's class, through kafka-run-class.sh) in a
  # java @argfile, main class included, mode 0600 and removed at once: on its command line anyone
  # on the host could read them (a container's processes are in the host's `ps`).
  args=/tmp/format.args
  printf "'%s'\n" kafka.tools.StorageTool format -t 4L6g3nShT-eMCtK--X86sw -c "$conf" \
    --add-scram "SCRAM-SHA-256=[name=ionflux-broker,password=$broker]" --add-scram "SCRAM-SHA-256=[name=ionflux-admin,password=$admin]" >"$args"
  rc=0
  /opt/kafka/bin/kafka-run-class.sh "@$args" || rc=$?
  rm -f "$args"
  [ "$rc" = 0 ] || exit "$rc"
fi
exec /opt/kafka/bin/kafka-server-start.sh "$conf"
