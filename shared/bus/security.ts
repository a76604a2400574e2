/**
 * Who may do what on the bus: SCRAM users and ACL bindings, in the hub's own words. The Kafka
 * implementation is shared/bus/kafka/security.ts; the plan of which principal gets which
 * bindings is shared/security/acl-plan.ts.
 */
export type AclResource = 'topic' | 'group' | 'cluster' | 'transactional_id';
export type AclOperation = 'all' | 'read' | 'write' | 'create' | 'delete' | 'alter' | 'describe' | 'describe_configs' | 'alter_configs' | 'idempotent_write';

/** One ACL: `principal` is the user name (without `User:`); `*` hosts always. */
export interface AclBinding {
  principal: string;
  resource: AclResource;
  /** Topic, group or transactional id name, or its prefix; `kafka-cluster` for the cluster. */
  name: string;
  pattern: 'literal' | 'prefixed';
  operation: AclOperation;
  permission: 'allow' | 'deny';
}

export interface ScramUser {
  name: string;
  mechanisms: string[];
}

/** Creates and removes principals and their ACLs. Needs a principal allowed to alter the cluster (the admin). */
export interface SecurityAdmin {
  /** Sets (or replaces) a user's SCRAM-SHA-256 credential. */
  upsertScramUser(name: string, password: string): Promise<void>;
  /** Removes every SCRAM credential of the user; a missing user is fine. */
  deleteScramUser(name: string): Promise<void>;
  listScramUsers(): Promise<ScramUser[]>;
  /** ACLs of one principal, or every ACL. */
  listAcls(principal?: string): Promise<AclBinding[]>;
  /** Idempotent: an existing binding is left as it is. */
  createAcls(bindings: AclBinding[]): Promise<void>;
  deleteAcls(bindings: AclBinding[]): Promise<void>;
  close(): Promise<void>;
}

/** A stable text form of a binding, for comparing plans with what the cluster holds. */
export function aclKey(b: AclBinding): string {
  return [b.principal, b.resource, b.pattern, b.name, b.operation, b.permission].join('|');
}
