// Top level: sign-in gate and the page for the current path.

import { useCallback, useState } from "react";
import { clearAuth, loadAuth, type UserAuth } from "./auth";
import { Lobby } from "./pages/Lobby";
import { ReplayPage } from "./pages/ReplayPage";
import { SessionPage } from "./pages/SessionPage";
import { SignIn } from "./pages/SignIn";
import { matchRoute, navigate, useLocation } from "./router";

export function App() {
  const [auth, setAuth] = useState<UserAuth | null>(loadAuth);
  const location = useLocation();
  const signOut = useCallback(() => {
    clearAuth();
    setAuth(null);
  }, []);

  if (!auth) return <SignIn onSignedIn={setAuth} />;
  const route = matchRoute(location);
  switch (route.page) {
    case "lobby":
      return <Lobby auth={auth} onSignOut={signOut} />;
    case "session":
      return <SessionPage key={route.sessionId} sessionId={route.sessionId} roleParam={route.role} />;
    case "replay":
      return <ReplayPage key={route.sessionId} sessionId={route.sessionId} />;
    default:
      return (
        <main className="page narrow">
          <p>Nothing here.</p>
          <button onClick={() => navigate("/")}>Go to the lobby</button>
        </main>
      );
  }
}
