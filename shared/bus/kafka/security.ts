import { pbkdf2Sync, randomBytes } from 'node:crypto';
import kafkajs, { type Admin, type Kafka } from 'kafkajs';
import { HubError } from '../../errors.ts';
import type { AclBinding, AclOperation, AclResource, ScramUser, SecurityAdmin } from '../security.ts';
import { createCluster, type Cluster, type RawRequest } from './cluster.ts';

// kafkajs is CommonJS; Node cannot see these as named exports.
const { AclOperationTypes, AclPermissionTypes, AclResourceTypes, ResourcePatternTypes } = kafkajs;

const RESOURCE: Record<AclResource, number> = { topic: AclResourceTypes.TOPIC, group: AclResourceTypes.GROUP, cluster: AclResourceTypes.CLUSTER, transactional_id: AclResourceTypes.TRANSACTIONAL_ID };
const OPERATION: Record<AclOperation, number> = {
  all: AclOperationTypes.ALL,
  read: AclOperationTypes.READ,
  write: AclOperationTypes.WRITE,
  create: AclOperationTypes.CREATE,
  delete: AclOperationTypes.DELETE,
  alter: AclOperationTypes.ALTER,
  describe: AclOperationTypes.DESCRIBE,
  describe_configs: AclOperationTypes.DESCRIBE_CONFIGS,
  alter_configs: AclOperationTypes.ALTER_CONFIGS,
  idempotent_write: AclOperationTypes.IDEMPOTENT_WRITE,
};
const invert = <K extends string>(m: Record<K, number>) => new Map(Object.entries(m).map(([k, v]) => [v as number, k as K]));
const RESOURCE_NAME = invert(RESOURCE);
const OPERATION_NAME = invert(OPERATION);

const toKafkaAcl = (b: AclBinding) => ({
  resourceType: RESOURCE[b.resource],
  resourceName: b.name,
  resourcePatternType: b.pattern === 'prefixed' ? ResourcePatternTypes.PREFIXED : ResourcePatternTypes.LITERAL,
  principal: `User:${b.principal}`,
  host: '*',
  operation: OPERATION[b.operation],
  permissionType: b.permission === 'deny' ? AclPermissionTypes.DENY : AclPermissionTypes.ALLOW,
});

// --- AlterUserScramCredentials (51) and DescribeUserScramCredentials (50), version 0 ----------
// kafkajs has neither (KIP-554 came after it). Both are "flexible" requests: request header v2
// is header v1 plus an empty tagged-field section, which kafkajs does not write, so the body
// below starts with that byte; likewise the response payload starts with the response header's
// tagged fields. Compact strings, bytes and arrays are unsigned-varint length + 1.
const SCRAM_SHA_256 = 1;
const ITERATIONS = 4096;

function uvarint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}
const compactBytes = (b: Buffer) => Buffer.concat([uvarint(b.length + 1), b]);
const compactString = (s: string) => compactBytes(Buffer.from(s, 'utf8'));
const compactArray = (items: Buffer[]) => Buffer.concat([uvarint(items.length + 1), ...items]);
const int8 = (n: number) => Buffer.from([n]);
const int32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const NO_TAGS = Buffer.from([0]);

/** Reads the flexible-version primitives of a response. */
class Reader {
  private at = 0;
  constructor(private readonly buf: Buffer) {}
  uvarint(): number {
    let n = 0;
    for (let shift = 0; ; shift += 7) {
      const b = this.buf[this.at++]!;
      n |= (b & 0x7f) << shift;
      if (!(b & 0x80)) return n >>> 0;
    }
  }
  int8 = () => this.buf.readInt8(this.at++);
  int16() {
    const v = this.buf.readInt16BE(this.at);
    this.at += 2;
    return v;
  }
  int32() {
    const v = this.buf.readInt32BE(this.at);
    this.at += 4;
    return v;
  }
  string(): string | null {
    const n = this.uvarint();
    if (n === 0) return null;
    const s = this.buf.toString('utf8', this.at, this.at + n - 1);
    this.at += n - 1;
    return s;
  }
  array<T>(item: () => T): T[] {
    const n = this.uvarint();
    return Array.from({ length: Math.max(0, n - 1) }, item);
  }
  tags(): void {
    for (let i = this.uvarint(); i > 0; i--) {
      this.uvarint();
      this.at += this.uvarint();
    }
  }
}

function rawRequest<T>(apiKey: number, apiName: string, body: Buffer, read: (r: Reader) => T): RawRequest {
  const payload = Buffer.concat([NO_TAGS, body]);
  return {
    request: { apiKey, apiVersion: 0, apiName, encode: async () => ({ buf: payload, buffer: payload }) },
    response: {
      decode: async (p: Buffer) => {
        const r = new Reader(p);
        r.tags(); // response header v1
        return read(r);
      },
      parse: async (decoded: unknown) => decoded,
    },
  };
}

interface UserResult {
  user: string;
  errorCode: number;
  errorMessage: string | null;
}

const userResult = (r: Reader): UserResult => {
  const out = { user: r.string() ?? '', errorCode: r.int16(), errorMessage: r.string() };
  r.tags();
  return out;
};

function alterScram(o: { deletions?: string[]; upsertions?: { name: string; password: string }[] }): RawRequest {
  const deletions = (o.deletions ?? []).map((name) => Buffer.concat([compactString(name), int8(SCRAM_SHA_256), NO_TAGS]));
  const upsertions = (o.upsertions ?? []).map(({ name, password }) => {
    const salt = randomBytes(32);
    const salted = pbkdf2Sync(password, salt, ITERATIONS, 32, 'sha256');
    return Buffer.concat([compactString(name), int8(SCRAM_SHA_256), int32(ITERATIONS), compactBytes(salt), compactBytes(salted), NO_TAGS]);
  });
  return rawRequest(51, 'AlterUserScramCredentials', Buffer.concat([compactArray(deletions), compactArray(upsertions), NO_TAGS]), (r) => {
    r.int32(); // throttle time
    const results = r.array(() => userResult(r));
    r.tags();
    return results;
  });
}

const describeScram = (): RawRequest =>
  rawRequest(50, 'DescribeUserScramCredentials', Buffer.concat([uvarint(0) /* null: every user */, NO_TAGS]), (r) => {
    r.int32();
    const errorCode = r.int16();
    const errorMessage = r.string();
    const results = r.array(() => {
      const res = { user: r.string() ?? '', errorCode: r.int16(), errorMessage: r.string(), mechanisms: [] as string[] };
      res.mechanisms = r.array(() => {
        const m = r.int8();
        r.int32();
        r.tags();
        return m === SCRAM_SHA_256 ? 'SCRAM-SHA-256' : m === 2 ? 'SCRAM-SHA-512' : `mechanism-${m}`;
      });
      r.tags();
      return res;
    });
    r.tags();
    return { errorCode, errorMessage, results };
  });

// RESOURCE_NOT_FOUND: deleting a credential that does not exist.
const RESOURCE_NOT_FOUND = 91;

function check(results: UserResult[], ignore: number[] = []): void {
  const failed = results.filter((r) => r.errorCode !== 0 && !ignore.includes(r.errorCode));
  if (failed.length) throw new HubError('scram_failed', failed.map((f) => `${f.user}: ${f.errorMessage ?? `error ${f.errorCode}`}`).join('; '));
}

/** The SecurityAdmin on Kafka: ACLs through kafkajs's admin, SCRAM users through raw requests to the controller. */
export function createKafkaSecurityAdmin(kafka: Kafka): SecurityAdmin {
  let admin: Promise<Admin> | undefined;
  let cluster: Cluster | undefined;
  const adminClient = () =>
    (admin ??= (async () => {
      const a = kafka.admin({ retry: { retries: 3 } });
      await a.connect();
      return a;
    })().catch((e: unknown) => {
      admin = undefined;
      throw e;
    }));
  async function send<T>(req: RawRequest): Promise<T> {
    if (!cluster) {
      cluster = createCluster(kafka, { allowAutoTopicCreation: false });
      await cluster.connect();
      await cluster.refreshMetadata();
    }
    const broker = await cluster.findControllerBroker();
    return (await broker.connectionPool.send(req)) as T;
  }

  return {
    async upsertScramUser(name, password) {
      check(await send<UserResult[]>(alterScram({ upsertions: [{ name, password }] })));
    },
    async deleteScramUser(name) {
      check(await send<UserResult[]>(alterScram({ deletions: [name] })), [RESOURCE_NOT_FOUND]);
    },
    async listScramUsers(): Promise<ScramUser[]> {
      const res = await send<{ errorCode: number; errorMessage: string | null; results: (UserResult & { mechanisms: string[] })[] }>(describeScram());
      if (res.errorCode !== 0) throw new HubError('scram_failed', res.errorMessage ?? `error ${res.errorCode}`);
      return res.results.filter((r) => r.errorCode === 0).map((r) => ({ name: r.user, mechanisms: r.mechanisms })).sort((a, b) => a.name.localeCompare(b.name));
    },
    async listAcls(principal) {
      const res = await (await adminClient()).describeAcls({
        resourceType: AclResourceTypes.ANY,
        resourcePatternType: ResourcePatternTypes.ANY,
        ...(principal ? { principal: `User:${principal}` } : {}),
        operation: AclOperationTypes.ANY,
        permissionType: AclPermissionTypes.ANY,
      } as Parameters<Admin['describeAcls']>[0]);
      const out: AclBinding[] = [];
      for (const r of res.resources) {
        const resource = RESOURCE_NAME.get(r.resourceType);
        if (!resource) continue;
        for (const a of r.acls) {
          const operation = OPERATION_NAME.get(a.operation);
          if (!operation || !a.principal.startsWith('User:')) continue;
          out.push({
            principal: a.principal.slice('User:'.length),
            resource,
            name: r.resourceName,
            pattern: r.resourcePatternType === ResourcePatternTypes.PREFIXED ? 'prefixed' : 'literal',
            operation,
            permission: a.permissionType === AclPermissionTypes.DENY ? 'deny' : 'allow',
          });
        }
      }
      return out;
    },
    async createAcls(bindings) {
      // The broker answers per binding in one request; keep requests small.
      for (let i = 0; i < bindings.length; i += 200) await (await adminClient()).createAcls({ acl: bindings.slice(i, i + 200).map(toKafkaAcl) as Parameters<Admin['createAcls']>[0]['acl'] });
    },
    async deleteAcls(bindings) {
      for (let i = 0; i < bindings.length; i += 200) await (await adminClient()).deleteAcls({ filters: bindings.slice(i, i + 200).map(toKafkaAcl) as Parameters<Admin['deleteAcls']>[0]['filters'] });
    },
    async close() {
      const a = admin;
      admin = undefined;
      await a?.then((x) => x.disconnect()).catch(() => undefined);
      await cluster?.disconnect().catch(() => undefined);
      cluster = undefined;
    },
  };
}
