import { oauthStateToken } from '../../../shared/security/oauth-state.ts';

/**
 * The OAuth `state`: workspace, PKCE verifier, the digest of the browser's nonce (browserBinding)
 * and expiry, sealed under a key derived from the client secret (shared/security/oauth-state.ts),
 * so the verifier never travels in clear and the state is good only in the browser that began.
 */
export interface ConnectState {
  workspaceId: string;
  verifier: string;
  browser: string;
  expiresAt: number;
}

export const { seal: sealState, open: openState } = oauthStateToken<ConnectState>('ionflux-tiktok', { workspaceId: 'w', verifier: 'v', browser: 'b' });
