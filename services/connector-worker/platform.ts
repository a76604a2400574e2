import { z } from 'zod';
import type { KafkaTable } from '../../shared/bus/table/table.ts';
import { topics } from '../../shared/bus/topics.ts';
import type { Subscription } from '../../shared/bus/types.ts';
import { decideApproval } from '../../shared/commands/approvals.ts';
import { decodeCommand } from '../../shared/commands/envelope.ts';
import { outcomeEvent, outcomeTopic } from '../../shared/commands/outcome.ts';
import type { Approval } from '../../shared/commands/state.ts';
import { describeError, HubError } from '../../shared/errors.ts';
import { publishEvent } from '../../shared/events/publisher.ts';
import type { Runtime } from '../../shared/runtime.ts';

const decisionParams = z.object({ approval_id: z.string().min(1), reason: z.string().max(500).optional() });
const ACTIONS = { 'approvals.approve': 'approved', 'approvals.deny': 'denied' } as const;

/**
 * ionflux.cmd.platform: `approvals.approve` / `approvals.deny` with { approval_id, reason? }, the
 * same as `ionflux approvals approve|deny`. An agent may decide only its own workspace's approvals.
 */
export function startPlatformWorker(rt: Runtime, approvals: KafkaTable<Approval>): Promise<Subscription> {
  return rt.bus.subscribe({
    service: 'platform',
    groupId: 'ionflux-platform-worker',
    subscriptions: [topics.command('platform')],
    fromBeginning: true,
    handler: async (record) => {
      const c = await decodeCommand(record.value, rt.registry); // invalid: dead-lettered by the runner
      const decision = ACTIONS[c.action as keyof typeof ACTIONS];
      const params = decisionParams.safeParse(c.params);
      let payload;
      try {
        if (!decision) throw new HubError('unknown_action', `platform has no action ${c.action}`);
        if (!params.success) throw new HubError('invalid_params', 'expected { approval_id, reason? }');
        const a = approvals.get(params.data.approval_id);
        if (!a || a.command.workspace_id !== c.workspace_id) throw new HubError('unknown_approval', `no approval ${params.data.approval_id} in this workspace`);
        const decided = await decideApproval({ bus: rt.bus, codec: rt.codec, approvals }, a.approval_id, decision, `agent:${c.agent_id}`, params.data.reason);
        payload = { status: 'succeeded' as const, result: { approval_id: decided.approval_id, status: decided.status }, attempts: 1 };
      } catch (e) {
        const d = describeError(e);
        payload = { status: 'failed' as const, error: { code: d.code, message: d.message }, attempts: 1 };
      }
      await publishEvent(rt, outcomeTopic(c), outcomeEvent('platform', c, payload));
    },
  });
}
