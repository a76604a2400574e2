import { USER_FIELD_SCOPES, userInfoInput } from '../../../shared/connectors/catalog/tiktok.ts';
import { handler } from '../../../shared/connectors/types.ts';
import { commandCall, type ActionDeps } from './deps.ts';

/** `user.info`: GET /v2/user/info/ with the fields the caller chose; a missing scope is named. */
export const userInfo = (d: ActionDeps) =>
  handler(userInfoInput, async (ctx) => {
    const fields = ctx.params.fields as (keyof typeof USER_FIELD_SCOPES)[];
    const scopes = [...new Set(fields.map((f) => USER_FIELD_SCOPES[f]))];
    const data = await d.tokens.withUserToken(ctx.workspaceId, ctx.idempotencyKey, (token) => d.api.call<{ user?: Record<string, unknown> }>('user.info', { token, query: { fields: fields.join(',') }, scopes, ...commandCall(ctx) }), ctx.signal);
    return { user: data.user ?? {} };
  });
