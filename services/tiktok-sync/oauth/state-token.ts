import { oauthStateToken } from '../../../shared/security/oauth-state.ts';

/**
 * The OAuth `state`: workspace, PKCE verifier and expiry, sealed under a key derived from the
 * client secret (shared/security/oauth-state.ts), so the verifier never travels in clear.
 */
export interface ConnectState {
  workspaceId: string;
  verifier: string;
  expiresAt: number;
}

export const { seal: sealState, open: openState } = oauthStateToken<ConnectState>('ionflux-tiktok', { workspaceId: 'w', verifier: 'v' });
