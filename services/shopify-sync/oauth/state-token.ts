import { oauthStateToken } from '../../../shared/security/oauth-state.ts';

/**
 * The OAuth `state` of an install: workspace, shop, the digest of the browser's nonce
 * (browserBinding) and expiry, sealed under a key derived from the app's API secret
 * (shared/security/oauth-state.ts), so it cannot be moved to another shop or browser and also
 * serves as Shopify's nonce.
 */
export interface InstallState {
  workspaceId: string;
  shop: string;
  browser: string;
  expiresAt: number;
}

export const { seal: sealState, open: openState } = oauthStateToken<InstallState>('ionflux-shopify', { workspaceId: 'w', shop: 's', browser: 'b' });
