import { events, manifest } from '../../shared/connectors/catalog/tiktok.ts';
import { validateManifest } from '../../shared/connectors/manifest.ts';
import type { Connector } from '../../shared/connectors/types.ts';
import { describeError } from '../../shared/errors.ts';
import type { TikTokApi } from './api/client.ts';
import type { ActionDeps } from './actions/deps.ts';
import { researchHashtags, researchVideos } from './actions/research.ts';
import { userInfo } from './actions/user-info.ts';
import { videosList, videosQuery } from './actions/videos-list.ts';
import { videosPublish } from './actions/videos-publish.ts';

/**
 * The TikTok connector as tiktok-sync runs it: the catalog's manifest (its authHelp pointing at
 * this deployment's connect URL), one handler per action, and `videos.publish` resumable.
 */
export function createTikTokConnector(d: ActionDeps & { api: TikTokApi }): Connector {
  return {
    manifest: validateManifest({ ...manifest, authHelp: 'Connect a TikTok account: an admin runs `ionflux connect tiktok --workspace <workspace>` and opens the link it prints (TikTok Login Kit v2 with PKCE; the failure message carries one for this workspace too). See docs/tiktok-sync.md.' }),
    events,
    resumable: new Set(['videos.publish']),
    handlers: {
      'user.info': userInfo(d),
      'videos.list': videosList(d),
      'videos.query': videosQuery(d),
      'research.videos.query': researchVideos(d),
      'research.hashtags.query': researchHashtags(d),
      'videos.publish': videosPublish(d),
    },
    // A command's call refused with a bare 401: marked only while its tokens are still the stored ones (tokens/reauth.ts).
    markUnauthorized: (ws, detail, usedUpdatedAt) => d.tokens.markRefused(ws, detail, usedUpdatedAt),
    async healthcheck(credentials, signal) {
      if (!credentials.access_token) return { ok: false, detail: 'no access token: connect TikTok first' };
      try {
        const data = await d.api.call<{ user?: { display_name?: string; open_id?: string } }>('user.info', { token: credentials.access_token, query: { fields: 'open_id,display_name' }, signal });
        return { ok: true, detail: `connected as ${data.user?.display_name ?? data.user?.open_id ?? 'the connected account'}` };
      } catch (e) {
        return { ok: false, detail: describeError(e).message };
      }
    },
  };
}
